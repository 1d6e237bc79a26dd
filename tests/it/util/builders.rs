//! Nodes and handler work as a test states them: a node is built from its parameters through
//! the same validation the client applies (so a test cannot hold a node the client would
//! refuse), and work is what the server hands `ha_event_handler` for one action.

use std::path::Path;

use csr_ha::node::{Node, NodeIndex, Param, Provider};
use csr_ha::work::{Action, Work};

/// How long a test's work may run unless it says otherwise (`Work { deadline_ms, ..work(..) }`).
pub const DEADLINE_MS: u64 = 20_000;

/// Node `index` of `provider` with `params`, each validated as `create_node` would.
pub fn node(index: u16, provider: Provider, params: &[(Param, &str)]) -> Node {
    let index = NodeIndex::new(index).expect("a node index from 1 to 1023");
    Node::with_params(index, provider, params).expect("valid test parameters")
}

/// `node` with `params` added or replaced, each validated as `set_node` would.
pub fn with_params(mut node: Node, params: &[(Param, &str)]) -> Node {
    for (param, text) in params {
        let value = param.validate(text, node.provider);
        node.set(*param, value.expect("valid test parameters"));
    }
    node
}

/// The work for `action` on `nodes`, in the HA directory `dir`, with [`DEADLINE_MS`].
pub fn work(action: Action, provider: Provider, dir: &Path, nodes: Vec<Node>) -> Work {
    Work {
        action,
        provider,
        ha_dir: dir.to_string_lossy().into_owned(),
        deadline_ms: DEADLINE_MS,
        nodes,
    }
}
