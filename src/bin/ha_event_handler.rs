//! `ha_event_handler`: runs one route table's share of an event, started by `ha_server`.
//!
//! ```text
//! stdin:  one JSON `Work` (the action, the provider and the nodes of one route table)
//! stdout: one JSON array of `NodeOutcome`, one per node
//! ```
//! It logs to `$CSR_HA_DIR/csr_ha.log` like the server; stderr is left to the server.

use std::io::{Read, Write};
use std::process::ExitCode;

use csr_ha::cli;
use csr_ha::cloud;
use csr_ha::work::Work;

const HELP: &str = "usage: ha_event_handler < work.json\n\
Started by ha_server, one per route table and event: reads one JSON Work on stdin, writes one\n\
JSON array of node outcomes on stdout. Not meant to be run by hand.\n";

fn main() -> ExitCode {
    if let Err(e) = cli::Args::parse(&cli::argv(), "ha_event_handler", &[]) {
        return csr_ha::cmd::run::reject(e, HELP);
    }
    let mut input = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut input) {
        eprintln!("ha_event_handler: cannot read work from stdin: {e}");
        return ExitCode::from(2);
    }
    let work: Work = match serde_json::from_str(&input) {
        Ok(work) => work,
        Err(e) => {
            eprintln!("ha_event_handler: work on stdin is not valid: {e}");
            return ExitCode::from(2);
        }
    };
    csr_ha::logging::init_file(&work.dir());
    let outcomes = cloud::run(&work);
    let text = match serde_json::to_string(&outcomes) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("ha_event_handler: cannot encode result: {e}");
            return ExitCode::from(2);
        }
    };
    let mut out = std::io::stdout().lock();
    if out
        .write_all(text.as_bytes())
        .and_then(|_| out.flush())
        .is_err()
    {
        return ExitCode::from(2);
    }
    ExitCode::SUCCESS
}
