//! csr-ha: high-availability route failover for a pair of cloud virtual routers.
//!
//! Client commands send one typed request frame to the server's FIFO ([`protocol`]); the server
//! ([`server`]) keeps the node database ([`node_db`]) and runs events ([`event_mgr`]) by handing
//! each route table's nodes to an `ha_event_handler` process, which talks to the cloud
//! ([`cloud`]).

#[macro_use]
mod words;

pub mod cli;
pub mod client;
pub mod cloud;
pub mod cmd;
pub mod event;
pub mod event_log;
pub mod event_mgr;
pub mod logging;
pub mod node;
pub mod node_db;
pub mod output;
pub mod paths;
pub mod percent;
pub mod protocol;
pub mod reply;
pub mod server;
pub mod timestamp;
pub mod work;
