//! `ha_server`: runs the HA server in the foreground (systemd runs it; `ha_api -c start` runs it
//! in the background). Logs go to `$CSR_HA_DIR/csr_ha.log`; a start failure is printed to stderr.

use std::process::ExitCode;

use csr_ha::paths::HaDir;

const HELP: &str = "usage: ha_server\n\
Runs the csr-ha server in the foreground until SIGTERM/SIGINT or `ha_api -c stop`.\n\
Environment: CSR_HA_DIR (default $HOME/cloud/HA), CSR_HA_HANDLER, CSR_HA_MAX_HANDLERS (8),\n\
CSR_HA_HANDLER_TIMEOUT (30 s), CSR_HA_CHECK_TIMEOUT (5 s), RUST_LOG (info).\n";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        csr_ha::out!("{HELP}");
        return ExitCode::SUCCESS;
    }
    if args.iter().any(|a| a == "--version") {
        csr_ha::outln!("{}", csr_ha::cli::version());
        return ExitCode::SUCCESS;
    }
    if let Some(a) = args.first() {
        eprintln!("400: ha_server takes no arguments (got {a:?}); see ha_server -h");
        return ExitCode::from(2);
    }
    let dir = HaDir::from_env();
    if let Err(e) = dir.create() {
        eprintln!("400: {e}");
        return ExitCode::from(1);
    }
    csr_ha::logging::init_file(&dir);
    match csr_ha::server::run(dir) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("ha_server cannot start: {e}");
            eprintln!("400: ha_server cannot start: {e}");
            ExitCode::from(1)
        }
    }
}
