//! The server, the node database, the client commands and events on the embedded `file`
//! provider (src/server.rs, node_db, event_mgr, cmd/, protocol).

mod dry_run;
mod events;
mod file_provider;
mod file_table_mode;
mod full_fifo;
mod lifecycle;
mod log_archive;
mod node_file_hardening;
mod nodes;
mod protocol_props;
mod queue;
mod race;
mod secrets;
mod server;
mod status_json;
