//! The server, the node database, the client commands and events on the embedded `file`
//! provider (src/server.rs, node_db, event_mgr, cmd/, protocol).

mod dry_run;
mod events;
mod file_provider;
mod lifecycle;
mod log_archive;
mod nodes;
mod protocol_props;
mod queue;
mod race;
mod secrets;
mod server;
