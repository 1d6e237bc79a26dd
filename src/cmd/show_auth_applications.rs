//! `show_auth_applications`: the Azure credentials this router signs in with, as the original's
//! `show_auth_applications.py` listed them: the default MSI (the VM's managed identity), the
//! default AAD app (`~/cloud/authMgr/aad_app_file`), and each Azure node's own. App and tenant
//! ids only, never a key. Acts locally (reads the files; needs no server).
//!
//! ```text
//! 200: Authentication applications
//! Default MSI application: the VM's managed identity (metadata service), for Azure nodes without -a when no default AAD application is set
//! Default AAD application: app 1111… in tenant 2222… (cloud azure), kept in /home/guestshell/cloud/authMgr/aad_app_file
//! Azure nodes:
//!   node 1: the default Azure AD app 1111… in tenant 2222… (/home/guestshell/cloud/authMgr/aad_app_file)
//!   node 2: the node's Azure AD app 3333… in tenant 2222… (-a -d -k)
//! ```

use std::process::ExitCode;

use crate::cli::{self, Args};
use crate::cloud::azure::{self, DefaultApp};
use crate::node::Provider;
use crate::node_db::NodeDb;
use crate::paths::HaDir;
use crate::protocol::Status;

pub const HELP: &str = "usage: show_auth_applications\n\
Lists the Azure credentials: the default MSI application (the VM's managed identity), the\n\
default AAD application (~/cloud/authMgr/aad_app_file, set with set_default_aad_app) and the\n\
credential each Azure node signs in with. Ids only, never a key. Needs no server.\n";

/// The report: a `199` warning first when the default app's file cannot be used.
pub fn render(dir: &HaDir, path: Option<&std::path::Path>) -> String {
    let mut warning = None;
    let default = match path.map(DefaultApp::load) {
        None => "No default AAD application is configured (HOME is not set)".to_string(),
        Some(Ok(Some(app))) => format!(
            "Default AAD application: {}, kept in {}",
            app.describe(),
            app.path.display()
        ),
        Some(Ok(None)) => format!(
            "No default AAD application is configured ({} does not exist)",
            path.map(|p| p.display().to_string()).unwrap_or_default()
        ),
        Some(Err(e)) => {
            warning = Some(format!("Warning: {e}"));
            "Default AAD application: not usable (see the warning)".to_string()
        }
    };
    let mut out = String::new();
    if let Some(w) = warning {
        out.push_str(&format!(
            "{}\n",
            crate::protocol::Line::status(Status::Warning, w)
        ));
    }
    out.push_str(&format!(
        "{}\n",
        crate::protocol::Line::status(Status::Ok, "Authentication applications")
    ));
    out.push_str("Default MSI application: the VM's managed identity (metadata service), for Azure nodes without -a when no default AAD application is set\n");
    out.push_str(&format!("{default}\n"));
    match NodeDb::read_only(dir) {
        Err(e) => out.push_str(&format!("Azure nodes: {e}\n")),
        Ok(nodes) => {
            let azure: Vec<_> = nodes
                .iter()
                .filter(|n| n.provider == Provider::Azure)
                .collect();
            if azure.is_empty() {
                out.push_str("No Azure nodes are configured\n");
            } else {
                out.push_str("Azure nodes:\n");
                for node in azure {
                    out.push_str(&format!(
                        "  node {}: {}\n",
                        node.index,
                        azure::credential_in_use(node)
                    ));
                }
            }
        }
    }
    out
}

pub fn main() -> ExitCode {
    if let Err(e) = Args::parse(&cli::argv(), "show_auth_applications", &[]) {
        return super::run::reject(e, HELP);
    }
    let path = DefaultApp::path_from_env();
    crate::out!("{}", render(&HaDir::from_env(), path.as_deref()));
    ExitCode::SUCCESS
}
