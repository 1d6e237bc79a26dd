//! Logging to `$CSR_HA_DIR/csr_ha.log` through `log`/`env_logger`, level from `RUST_LOG`
//! (default `info`). Every line about a node names its index and event; secrets never appear.

use std::fs::OpenOptions;

use crate::paths::HaDir;

/// Sends log lines to the HA directory's log file, or to stderr if it cannot be opened.
pub fn init_file(dir: &HaDir) {
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    builder.format_timestamp_millis();
    // At trace level ureq_proto hex-dumps every request and response: Authorization headers,
    // tokens and client secrets included. It never logs below debug, whatever RUST_LOG asks.
    if std::env::var("RUST_LOG").is_ok_and(|v| v.to_ascii_lowercase().contains("trace")) {
        builder.filter_module("ureq_proto", log::LevelFilter::Debug);
        builder.filter_module("ureq", log::LevelFilter::Debug);
    }
    if let Ok(file) = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.log_file())
    {
        builder.target(env_logger::Target::Pipe(Box::new(file)));
    }
    let _ = builder.try_init();
}
