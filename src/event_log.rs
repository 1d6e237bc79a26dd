//! One log file per node and event under `events/`, named like the original's
//! (`node_<index>_<YYYY-mm-dd_HH:MM:SS>_<event>`), at most [`MAX_EVENT_FILES`] kept.
//!
//! A file holds the node's parameters (secrets masked), what was read, what was written, the
//! timings and the result. As in the original, a `revert` that wrote nothing leaves no file,
//! and the read-only check after `create_node`/`set_params` never writes one.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::SystemTime;

use crate::event::EventKind;
use crate::node::Node;
use crate::paths::HaDir;
use crate::timestamp;
use crate::work::{Action, NodeOutcome, Work};

/// Oldest files are removed first once there are more than this many.
pub const MAX_EVENT_FILES: usize = 512;

/// Collects log lines per node while a handler works; written out by [`EventLog::finish`].
pub struct EventLog {
    dir: HaDir,
    action: Action,
    stamp: String,
    nodes: BTreeMap<u16, NodeLog>,
}

struct NodeLog {
    lines: Vec<String>,
    wrote: bool,
}

impl EventLog {
    pub fn new(work: &Work) -> EventLog {
        let stamp = timestamp::local(SystemTime::now(), timestamp::EVENT_FILE);
        let nodes = work
            .nodes
            .iter()
            .map(|node| {
                (
                    node.index.get(),
                    NodeLog {
                        lines: header(node, work.action),
                        wrote: false,
                    },
                )
            })
            .collect();
        EventLog {
            dir: work.dir(),
            action: work.action,
            stamp,
            nodes,
        }
    }

    /// Adds a line to a node's log.
    pub fn line(&mut self, index: u16, text: &str) {
        if let Some(log) = self.nodes.get_mut(&index) {
            log.lines.push(text.to_string());
        }
    }

    /// Adds a line saying the node's route was written.
    pub fn wrote(&mut self, index: u16, text: &str) {
        self.line(index, text);
        if let Some(log) = self.nodes.get_mut(&index) {
            log.wrote = true;
        }
    }

    /// Writes each node's file with its result, then trims the directory to the cap.
    pub fn finish(&mut self, outcomes: &[NodeOutcome]) {
        let Action::Event(kind) = self.action else {
            return;
        };
        let mut written = false;
        for outcome in outcomes {
            let Some(log) = self.nodes.get_mut(&outcome.index) else {
                continue;
            };
            if kind == EventKind::Revert
                && !log.wrote
                && outcome.outcome == crate::protocol::Status::Ok
            {
                continue;
            }
            log.lines.push(format!(
                "Result: {}: {} ({} ms)",
                outcome.outcome.code(),
                outcome.message,
                outcome.duration_ms
            ));
            if log.wrote {
                log.lines.push("Set route completed successfully".into());
            }
            let name = format!("node_{}_{}_{}", outcome.index, self.stamp, kind);
            if let Err(e) = write_unique(&self.dir.events(), &name, &log.lines.join("\n")) {
                log::warn!(
                    "node {} {kind}: cannot write event log {name}: {e}",
                    outcome.index
                );
            }
            written = true;
        }
        if written {
            prune(&self.dir.events(), MAX_EVENT_FILES);
        }
    }
}

fn header(node: &Node, action: Action) -> Vec<String> {
    let mut lines = vec![
        format!("Event type is {}", action.label()),
        format!(
            "Started {}",
            timestamp::local(SystemTime::now(), timestamp::EVENT_TIME)
        ),
        "Node configuration:".to_string(),
    ];
    lines.extend(node.describe().lines().map(|l| format!("  {l}")));
    lines
}

/// Creates `dir/name` (mode 0600), or `dir/name.N` if two events of one node share a second.
/// `events/` is made owner-only whoever (re)created it.
fn write_unique(dir: &std::path::Path, name: &str, text: &str) -> std::io::Result<()> {
    use crate::fs_util::{open_owner_only, OpenFor};
    crate::paths::owner_only_dir(dir)?;
    crate::paths::owner_only(dir);
    for n in 0..100 {
        let file = if n == 0 {
            name.to_string()
        } else {
            format!("{name}.{n}")
        };
        match open_owner_only(&dir.join(file), OpenFor::CreateNew) {
            Ok(mut f) => return writeln!(f, "{text}"),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other("too many event logs in one second"))
}

/// Removes the oldest `node_*` files beyond `keep`. Several handlers may prune at once, so a
/// file that is already gone is not an error.
pub fn prune(dir: &std::path::Path, keep: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<(SystemTime, String)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let modified = e.metadata().ok()?.modified().ok()?;
            name.starts_with("node_").then_some((modified, name))
        })
        .collect();
    if files.len() <= keep {
        return;
    }
    files.sort();
    let excess = files.len() - keep;
    for (_, name) in files.into_iter().take(excess) {
        let _ = std::fs::remove_file(dir.join(name));
    }
}
