//! The client half every command's `main` shares: send the parsed request, print the reply as
//! the command renders it, and map the outcome to the original's exit codes. `cli` only parses;
//! acting on what it parsed starts here.

use std::process::ExitCode;

use crate::cli::{
    argv, configured_provider, version, CliError, EXIT_BAD_INPUT, EXIT_FAILED, EXIT_NO_SERVER,
};
use crate::client::{self, ClientError};
use crate::node::Provider;
use crate::paths::HaDir;
use crate::protocol::{Command, Response, Status};

/// Sends `command`, prints the reply with `render`, and maps the outcome to an exit code.
pub fn send_and_print(
    dir: &HaDir,
    command: Command,
    render: impl Fn(&Response) -> String,
) -> ExitCode {
    let wait = client::wait_for(&command);
    match client::request(dir, command, wait) {
        Ok(response) => {
            crate::out!("{}", ensure_newline(render(&response)));
            exit_of(&response)
        }
        Err(e) => {
            crate::say!(Status::Failed, "{e}");
            ExitCode::from(exit_of_client_error(&e))
        }
    }
}

/// 0 for a reply that succeeded, else [`EXIT_FAILED`].
pub fn exit_of(response: &Response) -> ExitCode {
    if response.succeeded() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILED)
    }
}

/// [`EXIT_NO_SERVER`] when no server answered, else [`EXIT_FAILED`].
pub fn exit_of_client_error(error: &ClientError) -> u8 {
    match error {
        ClientError::NotRunning { .. }
        | ClientError::NoReply { .. }
        | ClientError::FifoFull { .. } => EXIT_NO_SERVER,
        _ => EXIT_FAILED,
    }
}

/// Prints a rejected command line (or the help) and returns the exit code.
pub fn reject(error: CliError, help: &str) -> ExitCode {
    match error {
        CliError::Help => {
            crate::out!("{help}");
            ExitCode::SUCCESS
        }
        CliError::Version => {
            crate::outln!("{}", version());
            ExitCode::SUCCESS
        }
        e => {
            crate::say!(Status::Failed, "{e}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}

fn ensure_newline(mut text: String) -> String {
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text
}

/// `main` of a command whose flags depend on the configured cloud (create, set, clear).
pub fn main_for_provider(
    parse: fn(&[String], Provider) -> Result<Command, CliError>,
    help: fn(Provider) -> String,
) -> ExitCode {
    let dir = HaDir::from_env();
    let provider = match configured_provider(&dir) {
        Ok(p) => p,
        Err(e) => return reject(e, ""),
    };
    match parse(&argv(), provider) {
        Ok(command) => send_and_print(&dir, command, Response::render),
        Err(e) => reject(e, &help(provider)),
    }
}

/// Prints what a command that acts without the server (the default Azure AD app's commands) did:
/// `200: <done>` and exit 0, or `400: <why>` and exit 1.
pub fn print_local(result: Result<String, String>) -> ExitCode {
    match result {
        Ok(done) => {
            crate::say!(Status::Ok, "{done}");
            ExitCode::SUCCESS
        }
        Err(why) => {
            crate::say!(Status::Failed, "{why}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// The original's default Azure AD app file (`~/cloud/authMgr/aad_app_file`), or the exit code
/// after saying that there is no home directory to hold it.
pub fn default_app_path() -> Result<std::path::PathBuf, ExitCode> {
    crate::cloud::azure::DefaultApp::path_from_env().ok_or_else(|| {
        crate::say!(
            Status::Failed,
            "HOME is not set, so there is no ~/cloud/authMgr/aad_app_file; run as the router's HA user"
        );
        ExitCode::from(EXIT_BAD_INPUT)
    })
}
