//! `clear_default_aad_app`: removes the default Azure AD app (`~/cloud/authMgr/aad_app_file`), as
//! the original's `clear_default_aad_app.py` did, so Azure nodes without `-a` use the VM's
//! managed identity from their next event. Acts locally; needs no server. Clearing when none is
//! set succeeds.

use std::process::ExitCode;

use crate::cli::{self, Args};
use crate::cloud::azure::DefaultApp;

pub const HELP: &str = "usage: clear_default_aad_app\n\
Removes the default Azure AD app (~/cloud/authMgr/aad_app_file): Azure nodes without their own\n\
-a -d -k then use the VM's managed identity from their next event. Needs no server.\n";

/// Removes the file at `path`; the `200:` line's text, or the `400:` line's.
pub fn apply(path: &std::path::Path) -> Result<String, String> {
    match DefaultApp::clear(path) {
        Ok(true) => {
            log::info!("default Azure AD app cleared");
            Ok(format!(
                "Default AAD application cleared ({} removed); Azure nodes without -a use the VM's managed identity from their next event",
                path.display()
            ))
        }
        Ok(false) => Ok(format!(
            "No default AAD application was set ({} does not exist)",
            path.display()
        )),
        Err(e) => Err(format!(
            "cannot remove {}: {e}; the default AAD application is still set",
            path.display()
        )),
    }
}

pub fn main() -> ExitCode {
    if let Err(e) = Args::parse(&cli::argv(), "clear_default_aad_app", &[]) {
        return super::run::reject(e, HELP);
    }
    let path = match super::run::default_app_path() {
        Ok(path) => path,
        Err(exit) => return exit,
    };
    super::run::print_local(apply(&path))
}
