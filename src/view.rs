//! The views that travel on the wire inside a [`crate::protocol::Response`]: a node as
//! `show_node` receives it, and the whole service as `ha_api -c status` does. Data only, known to
//! the protocol and built by the server; each command renders them itself (`cmd/show_node.rs`,
//! `cmd/status.rs`), so the wire format depends on no command.

use serde::{Deserialize, Serialize};

use crate::node::{LastEvent, Node};

/// A node as `show_node` receives it: secrets already masked by the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeView {
    pub node: Node,
    pub last_event: Option<LastEvent>,
    /// The node's last dry run.
    pub last_check: Option<LastEvent>,
    /// Which credential the node signs in with (`ha_api -c status`, Azure nodes): ids, never
    /// a key. `None` in `show_node`.
    pub credential: Option<String>,
}

/// One handler running, or work waiting for one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobView {
    /// The route table ([`crate::node::Node::route_table_id`]): `file/t1`, `aws/us-east-1/rtb-…`.
    pub table: String,
    /// `peerFail`, `revert (dry run)`, `check`.
    pub action: String,
    pub nodes: Vec<u16>,
    pub running: bool,
    /// Since it started (running) or arrived (waiting).
    pub age_ms: u64,
}

/// A cached credential: its kind and time left, never its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialView {
    /// `aws-role`, `aws-imds-token`, `aws-imds-v1`, `azure-token`, `gcp-token`.
    pub kind: String,
    pub expires_in_secs: u64,
}

/// What `ha_api -c status` receives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceView {
    pub pid: u32,
    pub version: String,
    pub uptime_secs: u64,
    pub cloud: String,
    pub ha_dir: String,
    pub protocol_version: u16,
    pub jobs: Vec<JobView>,
    pub bad_frames: u64,
    pub late_requests_dropped: u64,
    pub events_run: u64,
    pub events_failed: u64,
    pub dry_runs: u64,
    pub nodes: Vec<NodeView>,
    pub credentials: Vec<CredentialView>,
    /// What each cloud's certificates are checked against, as the server's handlers will:
    /// `("AWS", "the built-in Mozilla roots and the system bundle /etc/pki/tls/certs/ca-bundle.crt")`.
    pub roots: Vec<(String, String)>,
    /// When the server answered (seconds since the epoch), for the ages of last events.
    pub now_unix: u64,
}
