//! `ha_server`: runs the HA server in the foreground (systemd runs it; `ha_api -c start` runs it
//! in the background). Logs go to `$CSR_HA_DIR/csr_ha.log`; a start failure is printed to stderr.

use std::process::ExitCode;

use csr_ha::cli;
use csr_ha::paths::HaDir;

const HELP: &str = "usage: ha_server\n\
Runs the csr-ha server in the foreground until SIGTERM/SIGINT or `ha_api -c stop`.\n\
Environment: CSR_HA_DIR (default $HOME/cloud/HA), CSR_HA_HANDLER, CSR_HA_MAX_HANDLERS (8),\n\
CSR_HA_HANDLER_TIMEOUT (30 s), CSR_HA_CHECK_TIMEOUT (5 s), RUST_LOG (info).\n";

fn main() -> ExitCode {
    if let Err(e) = cli::Args::parse(&cli::argv(), "ha_server", &[]) {
        return csr_ha::cmd::run::reject(e, HELP);
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
