//! csr-ha: high-availability route failover for a pair of cloud virtual routers.
//!
//! Client commands ([`cmd`], flags parsed by [`cli`]) send one typed request frame to the
//! server's FIFO ([`protocol`], [`client`]); the server ([`server`]) answers on the client's
//! reply FIFO ([`reply`]), keeps the node database ([`node_db`] of [`node`]s) and has the event
//! manager ([`event_mgr`]) run each route table's share of an event in an `ha_event_handler`
//! process ([`work`] is that wire), which talks to the cloud ([`cloud`]) and writes the event
//! logs ([`event_log`]).

#[macro_use]
mod words;

pub mod cli;
pub mod client;
pub mod cloud;
pub mod cmd;
pub mod event;
pub mod event_log;
pub mod event_mgr;
pub mod fs_util;
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
pub mod view;
pub mod work;
