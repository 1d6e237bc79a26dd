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
//! The original Python package's `node_file` (one dict literal per line) is read too and
//! rewritten in this format, the original kept as `node_file.orig`.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::node::{LastEvent, Node, NodeIndex, Param, Provider};
use crate::paths::HaDir;

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
    pub fn load(dir: &HaDir) -> Result<NodeDb, DbError> {
        let path = dir.node_file();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(error) => return Err(DbError::Io { path, error }),
        };
        let (nodes, legacy) = parse(&text).map_err(|(line, reason)| DbError::Corrupt {
            path: path.clone(),
            line,
            reason,
        })?;
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
        let path = dir.node_file();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(error) => return Err(DbError::Io { path, error }),
        };
        let (nodes, _) = parse(&text).map_err(|(line, reason)| DbError::Corrupt {
            path: path.clone(),
            line,
            reason,
        })?;
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

    fn persist(&self, nodes: &BTreeMap<u16, Node>) -> Result<(), DbError> {
        let io = |error| DbError::Io {
            path: self.path.clone(),
            error,
        };
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let mut tmp = tempfile::Builder::new()
            .prefix(".node_file.")
            .tempfile_in(dir)
            .map_err(io)?;
        // App keys live here: owner-only, as the original's ~/cloud/HA was.
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(io)?;
        let mut text = String::from(HEADER);
        for node in nodes.values() {
            text.push_str(&format_line(node));
            text.push('\n');
        }
        tmp.write_all(text.as_bytes()).map_err(io)?;
        tmp.as_file().sync_all().map_err(io)?;
        tmp.persist(&self.path).map_err(|e| io(e.error))?;
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
        Ok(())
    }
}

/// Each node's last event (or last dry run, from `last_checks.json`), as `show_node` shows it;
/// `{}` when the file is missing or unreadable (it is a convenience, the event files are the
/// record).
pub fn load_last_events(path: &Path) -> BTreeMap<u16, LastEvent> {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default()
}

/// Replaces `last_events.json` or `last_checks.json` (temp file and rename; no fsync: losing the
/// newest entry in a power cut costs nothing that the event files do not hold).
pub fn save_last_events(dir: &HaDir, path: &Path, events: &BTreeMap<u16, LastEvent>) {
    let written = serde_json::to_vec_pretty(events)
        .map_err(std::io::Error::other)
        .and_then(|text| {
            let mut tmp = tempfile::Builder::new()
                .prefix(".last_events.")
                .tempfile_in(dir.root())?;
            tmp.write_all(&text)?;
            tmp.persist(path).map_err(|e| e.error)?;
            Ok(())
        });
    if let Err(e) = written {
        log::warn!("cannot write {}: {e}", path.display());
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

/// Parses a whole file; `Err((line number, reason))` on the first bad line. The flag says the
/// file was in the original package's format.
fn parse(text: &str) -> Result<(BTreeMap<u16, Node>, bool), (usize, String)> {
    let mut nodes = BTreeMap::new();
    let mut legacy = false;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let node = if line.starts_with('{') {
            legacy = true;
            parse_python_line(line)
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
fn build_node(pairs: Vec<(String, String)>, provider: Option<Provider>) -> Result<Node, String> {
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

/// Reads one line of the original package's `node_file`, e.g.
/// `{'index': '1', 'routeTableId': 'rtb-0a1b2c3d', 'region': 'us-east-1', 'mode': 'primary'}`.
fn parse_python_line(line: &str) -> Result<Node, String> {
    let pairs = python_dict(line)?;
    let get = |k: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    let provider = match get("cloud") {
        Some("gcp") => Provider::Gcp,
        Some("azure" | "azusgov" | "azchina") => Provider::Azure,
        Some(other) => return Err(format!("unknown cloud {other:?}")),
        None => Provider::Aws,
    };
    build_node(pairs, Some(provider))
}

/// A Python dict literal of string keys to string (or None/number) values.
fn python_dict(line: &str) -> Result<Vec<(String, String)>, String> {
    let body = line
        .strip_prefix('{')
        .and_then(|l| l.strip_suffix('}'))
        .ok_or("not a {...} dict literal")?;
    let mut chars = body.chars().peekable();
    let mut pairs = Vec::new();
    loop {
        skip_spaces(&mut chars);
        if chars.peek().is_none() {
            break;
        }
        let key = python_value(&mut chars)?.ok_or("a key is None")?;
        skip_spaces(&mut chars);
        if chars.next() != Some(':') {
            return Err(format!("expected ':' after key {key:?}"));
        }
        skip_spaces(&mut chars);
        if let Some(value) = python_value(&mut chars)? {
            pairs.push((key, value));
        }
        skip_spaces(&mut chars);
        match chars.next() {
            Some(',') | None => {}
            Some(c) => return Err(format!("unexpected {c:?} in dict literal")),
        }
    }
    Ok(pairs)
}

fn skip_spaces(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    while chars.peek().is_some_and(|c| c.is_whitespace()) {
        chars.next();
    }
}

/// A quoted string, a bare number, or `None` (→ `Ok(None)`).
fn python_value(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
) -> Result<Option<String>, String> {
    match chars.peek().copied() {
        Some(q @ ('\'' | '"')) => {
            chars.next();
            let mut out = String::new();
            loop {
                match chars.next() {
                    Some('\\') => out.push(chars.next().ok_or("unterminated string")?),
                    Some(c) if c == q => return Ok(Some(out)),
                    Some(c) => out.push(c),
                    None => return Err("unterminated string".into()),
                }
            }
        }
        Some(_) => {
            let mut word = String::new();
            while let Some(&c) = chars.peek() {
                if c == ',' || c == ':' || c.is_whitespace() {
                    break;
                }
                word.push(c);
                chars.next();
            }
            match word.as_str() {
                "None" => Ok(None),
                w if !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit()) => Ok(Some(word)),
                _ => Err(format!("unexpected {word:?} in dict literal")),
            }
        }
        None => Err("dict literal ends early".into()),
    }
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
    fn python_lines_import_per_cloud() {
        let aws = "{'index': '1', 'routeTableId': 'rtb-0a1b2c3d', 'region': 'us-east-1', 'eniId': 'eni-0a1b2c3d', 'route': '10.0.0.0/16', 'mode': 'primary'}";
        let node = parse_python_line(aws).expect("imports");
        assert_eq!(node.provider, Provider::Aws);
        assert_eq!(node.get(Param::EniId), Some("eni-0a1b2c3d"));
        let gcp = "{'index': '2', 'cloud': 'gcp', 'project': 'my-project', 'vpc': 'vpc-a', 'routeName': 'r-a', 'peerRouteName': 'r-b', 'nextHopIp': '10.0.0.2', 'hopPriority': '0', 'route': '10.1.0.0/16'}";
        let node = parse_python_line(gcp).expect("imports");
        assert_eq!(
            (node.provider, node.get(Param::HopPriority)),
            (Provider::Gcp, Some("0"))
        );
        let azure = "{'index': '3', 'cloud': 'azure', 'subscriptionId': 'abc-1', 'resourceGroup': 'rg', 'routeTableName': 'rt', 'nextHop': '10.0.0.4', 'appKey': None}";
        let node = parse_python_line(azure).expect("imports");
        assert_eq!(
            (node.provider, node.get(Param::AppKey)),
            (Provider::Azure, None)
        );
    }

    #[test]
    fn corrupt_lines_are_reported_with_their_number() {
        let text = "# header\nindex=1 provider=file routeTable=t1\nindex=2 provider=file route=10.0.0.1/8\n";
        let err = parse(text).expect_err("line 3 is bad");
        assert_eq!(err.0, 3);
        assert!(err.1.contains("route"), "{}", err.1);
    }
}
