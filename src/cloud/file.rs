//! The embedded `file` provider: route tables as JSON files on this machine.
//!
//! ```text
//! $CSR_HA_DIR/route_tables/<name>.json
//! {"routes":[{"destination":"10.0.0.0/16","next_hop":"10.0.1.10"}, ...]}
//! ```
//!
//! It has the cloud providers' semantics, so the quick start and most tests need no account.
//! An event's read takes an exclusive `flock` and keeps it until the event's writes are done, so
//! read, compare and write are one critical section: no other handler can move a route between
//! them. The writes re-read the file under that lock, compare conditional writes (`verify`) with
//! the value read (a table replaced by hand meanwhile is caught there), and replace the file
//! atomically (temp file, fsync, rename).
//!
//! Work that writes nothing (the check after `create_node`, a dry run) reads without the lock:
//! every write replaces the file whole by a rename, so a plain read sees one version or the
//! other, and a dry run never waits behind a running event.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use std::time::Instant;

use super::{run_table, CloudError, Permission, Route, RouteTable, RouteWrite};
use crate::event_log::EventLog;
use crate::node::{Cidr, Param};
use crate::work::{Action, NodeOutcome, Work};

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
    /// The exclusive lock taken by `read`, held until `write_all` is done.
    held: Option<Flock<File>>,
    /// Reads take no lock (the work writes nothing).
    read_only: bool,
}

/// Runs `work` on the table named by the group's first node (`-t`).
pub fn run(work: &Work, _deadline: Instant, log: &mut EventLog) -> Vec<NodeOutcome> {
    let opened = work
        .nodes
        .first()
        .and_then(|n| n.get(Param::RouteTable))
        .map(|name| {
            let table = FileTable::new(&work.dir().route_tables(), name);
            match work.action {
                Action::Event(_) => table,
                Action::Check | Action::DryRun(_) => table.read_only(),
            }
        })
        .ok_or_else(|| CloudError::Local("node has no route table (-t)".into()));
    run_table(opened, work, log)
}

impl FileTable {
    pub fn new(dir: &std::path::Path, name: &str) -> FileTable {
        FileTable {
            name: name.to_string(),
            path: dir.join(format!("{name}.json")),
            held: None,
            read_only: false,
        }
    }

    /// A table read without the writers' lock, for work that writes nothing.
    pub fn read_only(mut self) -> FileTable {
        self.read_only = true;
        self
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
        let table = if self.read_only {
            self.load(&mut self.open_file()?)?
        } else {
            let mut file = self.lock_live()?;
            let table = self.load(&mut file)?;
            self.held = Some(file);
            table
        };
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
                pinned: None,
            })
            .collect())
    }

    /// One locked read-compare-rewrite (one fsync) for all of an event's writes to this table.
    fn write_all(&mut self, writes: &[RouteWrite]) -> Vec<Result<(), CloudError>> {
        let held = self.held.take();
        match self.update(held, writes) {
            Ok(results) => results,
            Err(e) => writes.iter().map(|_| Err(e.clone())).collect(),
        }
    }

    /// The write replaces the file by a rename: the server's user must be able to write both
    /// the file and its directory.
    fn probe_write(&mut self, _writes: &[RouteWrite]) -> Permission {
        use nix::unistd::{access, AccessFlags};
        let dir = self.path.parent().unwrap_or(std::path::Path::new("."));
        for path in [self.path.as_path(), dir] {
            if let Err(e) = access(path, AccessFlags::W_OK) {
                return Permission::Denied(format!(
                    "{} is not writable by this user ({e})",
                    path.display()
                ));
            }
        }
        Permission::Permitted
    }
}

impl FileTable {
    /// An exclusive lock on the live file. The lock is taken on an inode; a rename by another
    /// writer replaces it, so a writer that waited on the old inode notices and locks the new one.
    fn lock_live(&self) -> Result<Flock<File>, CloudError> {
        loop {
            let file = self.lock(self.open_file()?, FlockArg::LockExclusive)?;
            if self.is_live(&file) {
                return Ok(file);
            }
        }
    }

    fn is_live(&self, file: &File) -> bool {
        use std::os::unix::fs::MetadataExt;
        let held = file.metadata().map(|m| m.ino()).ok();
        let live = std::fs::metadata(&self.path).map(|m| m.ino()).ok();
        held.is_some() && held == live
    }

    /// Applies `writes` under the exclusive lock (the one `read` took if the file is still the
    /// one it read); the outer error means nothing was written.
    fn update(
        &self,
        held: Option<Flock<File>>,
        writes: &[RouteWrite],
    ) -> Result<Vec<Result<(), CloudError>>, CloudError> {
        let mut file = match held {
            Some(file) if self.is_live(&file) => file,
            _ => self.lock_live()?,
        };
        use std::io::Seek;
        file.rewind()
            .map_err(|e| CloudError::Local(format!("cannot read {}: {e}", self.path.display())))?;
        let mut table = self.load(&mut file)?;
        let results: Vec<_> = writes.iter().map(|w| self.set(&mut table, w)).collect();
        if results.iter().any(Result::is_ok) {
            self.replace(&table)?;
        }
        Ok(results)
    }

    fn set(&self, table: &mut TableFile, write: &RouteWrite) -> Result<(), CloudError> {
        let route = &write.route;
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
        if write.conditional && route.next_hop.as_deref() != Some(entry.next_hop.as_str()) {
            return Err(CloudError::Changed {
                now: Some(entry.next_hop.clone()),
            });
        }
        entry.next_hop = write.next_hop.clone();
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
