//! The node database: `BTreeMap<u16, Node>` persisted to `node_file`.
//!
//! Every change is written to disk before the server acknowledges it: the whole map goes to a
//! temp file in the same directory, which is fsynced, renamed over `node_file`, and the directory
//! fsynced, so a crash leaves either the old file or the new one, never half of either.
//!
//! ```text
//! # csr-ha node_file v1: one node per line, key=value separated by spaces,
//! # values percent-encoded (%20 space, %25 percent, %3D equals sign).
//! index=1 provider=aws routeTableId=rtb-0a1b2c3d region=us-east-1 eniId=eni-0a1b2c3d route=10.0.0.0/16 mode=primary
//! index=2 provider=file routeTable=t1 nextHop=10.0.1.20 mode=secondary
//! ```
//!
//! The original Python package's `node_file` (one dict literal per line, [`legacy`]) is read
//! too and rewritten in this format, the original kept as `node_file.orig`. Each node's last
//! event and dry run are kept apart, in JSON ([`last_events`]).
//!
//! At start the file must be a regular file (a FIFO or a device is refused, never opened for a
//! blocking read), temp files an interrupted write left are removed, and a symlinked
//! `node_file` is written through to its target (the link stays).

mod last_events;
mod legacy;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::fs_util::{self, Durability, Perms, ReadError};
use crate::node::{Node, NodeIndex, Param, Provider};
use crate::paths::HaDir;

pub use last_events::{load_last_events, save_last_events};

/// Far above what 1023 nodes take (about 300 bytes each): a larger file is not a node_file.
const MAX_BYTES: u64 = 16 * 1024 * 1024;

const HEADER: &str = "# csr-ha node_file v1: one node per line, key=value separated by spaces,\n\
# values percent-encoded (%20 space, %25 percent, %3D equals sign).\n";

/// A problem with `node_file`, naming the file and line so the user can fix it by hand.
#[derive(Debug)]
pub enum DbError {
    Corrupt {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// Not a regular file of a sane size: refused before anything is read.
    Unusable { path: PathBuf, why: ReadError },
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DbError::Corrupt { path, line, reason } => write!(
                f,
                "{} line {line}: {reason}; fix or remove that line (nothing was overwritten)",
                path.display()
            ),
            DbError::Io { path, error } => write!(f, "{}: {error}", path.display()),
            DbError::Unusable { path, why } => write!(
                f,
                "node_file {} {why}; replace it with the regular file that holds the nodes, or \
                 remove it to start with none",
                path.display()
            ),
        }
    }
}

impl std::error::Error for DbError {}

/// The nodes, and where they are kept.
#[derive(Debug)]
pub struct NodeDb {
    path: PathBuf,
    nodes: BTreeMap<u16, Node>,
}

impl NodeDb {
    /// Loads `node_file` (missing = empty). An original-format file is converted and the
    /// original kept as `node_file.orig`.
    /// Only the server calls it, holding the pid lock: the temp files of a write it did not
    /// finish (a `kill -9`, a power cut) are removed here.
    pub fn load(dir: &HaDir) -> Result<NodeDb, DbError> {
        let path = dir.node_file();
        for name in fs_util::remove_leftovers(&path) {
            log::warn!("removed {name}, left by an interrupted write of node_file");
        }
        let (nodes, legacy) = read(&path)?;
        let db = NodeDb { path, nodes };
        if legacy {
            let orig = dir.node_file_orig();
            std::fs::copy(&db.path, &orig).map_err(|error| DbError::Io { path: orig, error })?;
            db.persist(&db.nodes)?;
            log::info!(
                "imported {} node(s) from the original package's node_file",
                db.nodes.len()
            );
        }
        Ok(db)
    }

    /// The nodes in `node_file` as they are on disk (missing = none), read only: an
    /// original-format file is parsed, not converted. For commands that run without the server
    /// (`show_auth_applications`).
    pub fn read_only(dir: &HaDir) -> Result<Vec<Node>, DbError> {
        let (nodes, _) = read(&dir.node_file())?;
        Ok(nodes.into_values().collect())
    }

    pub fn get(&self, index: NodeIndex) -> Option<&Node> {
        self.nodes.get(&index.get())
    }

    pub fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.nodes.values()
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Stores `node` (new or replacing), on disk first.
    pub fn put(&mut self, node: Node) -> Result<(), DbError> {
        let mut next = self.nodes.clone();
        next.insert(node.index.get(), node);
        self.persist(&next)?;
        self.nodes = next;
        Ok(())
    }

    /// Removes a node, on disk first; `false` if it did not exist.
    pub fn remove(&mut self, index: NodeIndex) -> Result<bool, DbError> {
        if !self.nodes.contains_key(&index.get()) {
            return Ok(false);
        }
        let mut next = self.nodes.clone();
        next.remove(&index.get());
        self.persist(&next)?;
        self.nodes = next;
        Ok(true)
    }

    /// App keys live here: owner-only, as the original's ~/cloud/HA was.
    fn persist(&self, nodes: &BTreeMap<u16, Node>) -> Result<(), DbError> {
        let mut text = String::from(HEADER);
        for node in nodes.values() {
            text.push_str(&format_line(node));
            text.push('\n');
        }
        fs_util::replace(
            &self.path,
            text.as_bytes(),
            Perms::OwnerOnly,
            Durability::Synced,
        )
        .map_err(|error| DbError::Io {
            path: self.path.clone(),
            error,
        })
    }
}

/// One node as a `node_file` line.
pub fn format_line(node: &Node) -> String {
    let mut line = format!("index={} provider={}", node.index, node.provider);
    for param in node.provider.params() {
        if let Some(value) = node.get(param) {
            line.push_str(&format!(" {}={}", param.key(), encode(value)));
        }
    }
    line
}

/// The nodes in the file at `path` (missing: none), and whether it is in the original's format.
/// The file must be a regular one of bounded size, opened without blocking.
fn read(path: &Path) -> Result<(BTreeMap<u16, Node>, bool), DbError> {
    let bytes = match fs_util::read_regular(path, MAX_BYTES) {
        Ok(bytes) => bytes,
        Err(ReadError::Missing(_)) => Vec::new(),
        Err(ReadError::Io(error)) => {
            let path = path.to_path_buf();
            return Err(DbError::Io { path, error });
        }
        Err(why) => {
            let path = path.to_path_buf();
            return Err(DbError::Unusable { path, why });
        }
    };
    parse(&bytes).map_err(|(line, reason)| DbError::Corrupt {
        path: path.to_path_buf(),
        line,
        reason,
    })
}

/// Parses a whole file; `Err((line number, reason))` on the first bad line (one that is not
/// UTF-8 text included). The flag says the file was in the original package's format.
fn parse(bytes: &[u8]) -> Result<(BTreeMap<u16, Node>, bool), (usize, String)> {
    let mut nodes = BTreeMap::new();
    let mut legacy = false;
    for (n, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = std::str::from_utf8(raw)
            .map_err(|e| (n + 1, not_utf8(raw, &e)))?
            .trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let node = if line.starts_with('{') {
            legacy = true;
            legacy::parse_python_line(line)
        } else {
            parse_line(line)
        }
        .map_err(|reason| (n + 1, reason))?;
        if nodes.insert(node.index.get(), node).is_some() {
            return Err((n + 1, "a node with this index appears twice".into()));
        }
    }
    Ok((nodes, legacy))
}

/// `is not UTF-8 text (byte 0xff at column 7)`.
fn not_utf8(raw: &[u8], error: &std::str::Utf8Error) -> String {
    let at = error.valid_up_to();
    match raw.get(at) {
        Some(byte) => format!("is not UTF-8 text (byte {byte:#04x} at column {})", at + 1),
        None => "is not UTF-8 text".to_string(),
    }
}

/// One `node_file` line (`index=1 provider=file routeTable=t1 …`) as a node, every value validated.
pub fn parse_line(line: &str) -> Result<Node, String> {
    let mut pairs = Vec::new();
    for word in line.split_whitespace() {
        let (key, value) = word
            .split_once('=')
            .ok_or_else(|| format!("{word:?} is not key=value"))?;
        pairs.push((
            key.to_string(),
            decode(value).ok_or_else(|| format!("bad %-escape in {word:?}"))?,
        ));
    }
    build_node(pairs, None)
}

/// Builds a node from key/value pairs, validating every value as if it came from the CLI.
pub(super) fn build_node(
    pairs: Vec<(String, String)>,
    provider: Option<Provider>,
) -> Result<Node, String> {
    let find = |k: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    let index: NodeIndex = find("index")
        .ok_or("no index")?
        .trim()
        .parse()
        .map_err(|_| "index must be 1..1023".to_string())?;
    let provider = match provider {
        Some(p) => p,
        None => find("provider")
            .ok_or("no provider")?
            .parse()
            .map_err(|e: crate::node::InvalidValue| e.to_string())?,
    };
    let mut node = Node::new(index, provider);
    for (key, value) in &pairs {
        if key == "index" || key == "provider" {
            continue;
        }
        let param = Param::from_key(key).ok_or_else(|| format!("unknown key {key:?}"))?;
        if !provider.params().contains(&param) {
            return Err(format!("key {key:?} does not belong to a {provider} node"));
        }
        let value = param
            .validate(value, provider)
            .map_err(|e| format!("{key}: {e}"))?;
        node.set(param, value);
    }
    Ok(node)
}

fn encode(value: &str) -> String {
    crate::percent::encode(value, crate::percent::NODE_FILE)
}

fn decode(value: &str) -> Option<String> {
    crate::percent::decode(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_with_awkward_values() {
        let mut node = Node::new(NodeIndex::new(7).expect("valid"), Provider::Azure);
        for (p, v) in [(Param::AppKey, "a=b%c#d~"), (Param::Cloud, "azure")] {
            node.set(p, p.validate(v, Provider::Azure).expect("valid"));
        }
        let line = format_line(&node);
        assert!(!line.contains("a=b%c"));
        assert_eq!(parse_line(&line), Ok(node));
    }

    #[test]
    fn corrupt_lines_are_reported_with_their_number() {
        let text = "# header\nindex=1 provider=file routeTable=t1\nindex=2 provider=file route=10.0.0.1/8\n";
        let err = parse(text.as_bytes()).expect_err("line 3 is bad");
        assert_eq!(err.0, 3);
        assert!(err.1.contains("route"), "{}", err.1);
        let text = b"# header\nindex=1 provider=file routeTable=t1\nindex=2 provider=file routeTable=t\xff2\n";
        assert_eq!(
            parse(text).expect_err("line 3 is not UTF-8"),
            (3, "is not UTF-8 text (byte 0xff at column 35)".to_string())
        );
    }
}
