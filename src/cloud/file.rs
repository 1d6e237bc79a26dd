//! The embedded `file` provider: route tables as JSON files on this machine.
//!
//! ```text
//! $CSR_HA_DIR/route_tables/<name>.json
//! {"routes":[{"destination":"10.0.0.0/16","next_hop":"10.0.1.10"}, ...]}
//! ```
//!
//! It has the cloud providers' semantics, so the quick start and most tests need no account.
//! Every write re-reads the file under an exclusive `flock` and replaces it atomically (temp
//! file, fsync, rename), so two handlers writing one table never lose each other's changes.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use super::{CloudError, Route, RouteTable, Work};
use crate::node::{Cidr, Param};

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct TableFile {
    pub routes: Vec<FileRoute>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileRoute {
    pub destination: String,
    pub next_hop: String,
}

/// A route table file under `route_tables/`.
pub struct FileTable {
    name: String,
    path: PathBuf,
}

/// Opens the table named by the group's first node (`-t`).
pub fn open(work: &Work) -> Result<Box<dyn RouteTable>, CloudError> {
    let name = work
        .nodes
        .first()
        .and_then(|n| n.get(Param::RouteTable))
        .ok_or_else(|| CloudError::Local("node has no route table (-t)".into()))?;
    Ok(Box::new(FileTable::new(&work.dir().route_tables(), name)))
}

impl FileTable {
    pub fn new(dir: &std::path::Path, name: &str) -> FileTable {
        FileTable {
            name: name.to_string(),
            path: dir.join(format!("{name}.json")),
        }
    }

    fn load(&self, file: &mut File) -> Result<TableFile, CloudError> {
        let mut text = String::new();
        std::io::Read::read_to_string(file, &mut text)
            .map_err(|e| CloudError::Local(format!("cannot read {}: {e}", self.path.display())))?;
        let table: TableFile = serde_json::from_str(&text).map_err(|e| {
            CloudError::Local(format!(
                "{} is not a route table ({e}); expected {{\"routes\":[{{\"destination\":\"10.0.0.0/16\",\"next_hop\":\"10.0.1.10\"}}]}}",
                self.path.display()
            ))
        })?;
        Ok(table)
    }

    fn open_file(&self) -> Result<File, CloudError> {
        File::open(&self.path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => CloudError::TableNotFound(self.name.clone()),
            _ => CloudError::Local(format!("cannot open {}: {e}", self.path.display())),
        })
    }

    fn lock(&self, file: File, arg: FlockArg) -> Result<Flock<File>, CloudError> {
        Flock::lock(file, arg).map_err(|(_, e)| {
            CloudError::Local(format!("cannot lock {}: {e}", self.path.display()))
        })
    }
}

impl RouteTable for FileTable {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn read(&mut self) -> Result<Vec<Route>, CloudError> {
        let mut file = self.lock(self.open_file()?, FlockArg::LockShared)?;
        let table = self.load(&mut file)?;
        Ok(table
            .routes
            .into_iter()
            .map(|r| Route {
                destination: r
                    .destination
                    .parse::<Cidr>()
                    .map(|c| c.to_string())
                    .unwrap_or(r.destination),
                next_hop: Some(r.next_hop),
                id: String::new(),
            })
            .collect())
    }

    fn write(&mut self, route: &Route, next_hop: &str) -> Result<(), CloudError> {
        let writes = [(route.clone(), next_hop.to_string())];
        self.write_all(&writes).pop().unwrap_or(Ok(()))
    }

    /// One locked read-modify-rewrite (one fsync) for all of an event's writes to this table.
    fn write_all(&mut self, writes: &[(Route, String)]) -> Vec<Result<(), CloudError>> {
        match self.update(writes) {
            Ok(results) => results,
            Err(e) => writes.iter().map(|_| Err(e.clone())).collect(),
        }
    }
}

impl FileTable {
    /// Applies `writes` under the exclusive lock; the outer error means nothing was written.
    fn update(
        &self,
        writes: &[(Route, String)],
    ) -> Result<Vec<Result<(), CloudError>>, CloudError> {
        // The lock is taken on the live file; the rename below replaces it, so a writer that
        // waited on the old inode must notice and retry on the new one.
        loop {
            let mut file = self.lock(self.open_file()?, FlockArg::LockExclusive)?;
            let same_inode = {
                use std::os::unix::fs::MetadataExt;
                let held = file.metadata().map(|m| m.ino()).ok();
                let live = std::fs::metadata(&self.path).map(|m| m.ino()).ok();
                held.is_some() && held == live
            };
            if !same_inode {
                continue;
            }
            let mut table = self.load(&mut file)?;
            let results = writes
                .iter()
                .map(|(route, next_hop)| self.set(&mut table, route, next_hop))
                .collect();
            self.replace(&table)?;
            return Ok(results);
        }
    }

    fn set(&self, table: &mut TableFile, route: &Route, next_hop: &str) -> Result<(), CloudError> {
        let wanted: Option<Cidr> = route.destination.parse().ok();
        let entry = table
            .routes
            .iter_mut()
            .find(|r| wanted.is_some() && r.destination.parse::<Cidr>().ok() == wanted)
            .ok_or_else(|| {
                CloudError::Local(format!(
                    "Route {} not found in Route Table {}",
                    route.destination, self.name
                ))
            })?;
        entry.next_hop = next_hop.to_string();
        Ok(())
    }
}

impl FileTable {
    fn replace(&self, table: &TableFile) -> Result<(), CloudError> {
        let fail = |e: std::io::Error| {
            CloudError::Local(format!("cannot write {}: {e}", self.path.display()))
        };
        let dir = self.path.parent().unwrap_or(std::path::Path::new("."));
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(fail)?;
        let text =
            serde_json::to_string_pretty(table).map_err(|e| CloudError::Local(e.to_string()))?;
        tmp.write_all(text.as_bytes()).map_err(fail)?;
        tmp.write_all(b"\n").map_err(fail)?;
        tmp.as_file().sync_all().map_err(fail)?;
        tmp.persist(&self.path).map_err(|e| fail(e.error))?;
        Ok(())
    }
}
