//! The events a node can receive, named as IOS EEM applets and cron jobs name them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::node::InvalidValue;

/// `node_event -e <kind>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    /// The peer router is dead: point the node's route(s) at this router.
    PeerFail,
    /// Put a primary node's route(s) back on this router.
    Revert,
    /// Read the route(s) and write them back unchanged, proving write access.
    Verify,
}

impl EventKind {
    pub const ACCEPTED: &'static str = "peerFail, revert or verify";

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::PeerFail => "peerFail",
            EventKind::Revert => "revert",
            EventKind::Verify => "verify",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventKind {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<EventKind, InvalidValue> {
        match s {
            "peerFail" => Ok(EventKind::PeerFail),
            "revert" => Ok(EventKind::Revert),
            "verify" => Ok(EventKind::Verify),
            _ => Err(InvalidValue::new("-e", s, EventKind::ACCEPTED)),
        }
    }
}
