//! The events a node can receive, named as IOS EEM applets and cron jobs name them.

use serde::{Deserialize, Serialize};

words! {
    /// `node_event -e <kind>`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    pub enum EventKind ("-e", "peerFail, revert or verify") {
        /// The peer router is dead: point the node's route(s) at this router.
        PeerFail = "peerFail",
        /// Put a primary node's route(s) back on this router.
        Revert = "revert",
        /// Read the route(s) and write them back unchanged, proving write access.
        Verify = "verify",
    }
}
