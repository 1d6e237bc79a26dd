//! The wire between the server and an `ha_event_handler`, as `protocol` is between a client and
//! the server: the work a handler is given on its stdin and the outcome per node it answers
//! on its stdout, both JSON.
//!
//! ```text
//! stdin:  {"action":{"Event":"PeerFail"},"provider":"File","ha_dir":"…","deadline_ms":27000,
//!          "nodes":[{"index":1,"provider":"File","params":{"RouteTable":"t1",…}}]}
//! stdout: [{"index":1,"outcome":"Ok","message":"10.99.0.0/16 in t1 now via …","duration_ms":4}]
//! ```

use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::event::EventKind;
use crate::node::{Node, Provider};
use crate::paths::HaDir;
use crate::protocol::Status;

/// What a handler is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// Run an event on every node of the group.
    Event(EventKind),
    /// Read-only check after `create_node`/`set_params`: table exists, `-r` route exists, next
    /// hop plausible. Writes nothing and leaves no event log.
    Check,
    /// `node_event … --dry-run`: the event's read and plan, then a proof of write permission
    /// ([`crate::cloud::Permission`]) instead of the writes. Writes nothing.
    DryRun(EventKind),
}

impl Action {
    pub fn label(self) -> &'static str {
        match self {
            Action::Event(kind) | Action::DryRun(kind) => kind.as_str(),
            Action::Check => "check",
        }
    }

    /// How its lines and `ha_api -c status` name it: `peerFail`, `revert (dry run)`, `check`.
    pub fn title(self) -> String {
        match self {
            Action::DryRun(kind) => format!("{kind} (dry run)"),
            other => other.label().to_string(),
        }
    }
}

/// One handler's work: the nodes of one route table and what to do with them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Work {
    pub action: Action,
    pub provider: Provider,
    /// The HA directory (event logs, the `file` provider's tables, credentials.json).
    pub ha_dir: String,
    /// Milliseconds the handler has before the server kills it; retries must end sooner.
    pub deadline_ms: u64,
    pub nodes: Vec<Node>,
}

impl Work {
    pub fn dir(&self) -> HaDir {
        HaDir::new(&self.ha_dir)
    }
}

/// One node's result, as the handler reports it to the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeOutcome {
    pub index: u16,
    pub outcome: Status,
    /// What happened, without the status prefix or node name, e.g.
    /// `10.99.0.0/16 in t1 now via 10.0.1.20 (was 10.0.1.10), 4 ms`.
    pub message: String,
    pub duration_ms: u64,
}

impl NodeOutcome {
    pub fn new(index: u16, outcome: Status, message: impl Into<String>, started: Instant) -> Self {
        NodeOutcome {
            index,
            outcome,
            message: message.into(),
            duration_ms: started.elapsed().as_millis() as u64,
        }
    }
}
