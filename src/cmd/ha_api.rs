//! `ha_api -c start|stop|ping`: runs the server in the background, stops it, or checks it.

use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use super::State;
use crate::cli::{self, Args, CliError, EXIT_FAILED, EXIT_NO_SERVER};
use crate::client;
use crate::node::InvalidValue;
use crate::paths::HaDir;
use crate::protocol::{Command, Response};

pub const HELP: &str = "usage: ha_api -c start|stop|ping\n  \
-c <value>     command         start: run ha_server in the background and wait until it answers;\n                                 \
stop: ask it to exit; ping: exit 0 only if it answers\n\
The server binary is $CSR_HA_SERVER, else ha_server beside ha_api.\n";

/// How long `start` and `stop` wait for the server to come up or go away.
const START_WAIT: Duration = Duration::from_secs(10);

pub fn ping(state: &State) -> Response {
    Response::ok(format!(
        "200: HA server is running (pid {}, {} node(s), {} bad frame(s) dropped, {} request(s) dropped after their client stopped waiting)",
        std::process::id(),
        state.db.len(),
        state.bad_frames,
        state.stale_requests
    ))
}

fn ping_once(dir: &HaDir, wait: Duration) -> Result<Response, client::ClientError> {
    client::request(dir, Command::Ping, wait)
}

fn server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("CSR_HA_SERVER").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("ha_server")))
        .unwrap_or_else(|| PathBuf::from("ha_server"))
}

fn start(dir: &HaDir) -> ExitCode {
    if let Ok(r) = ping_once(dir, Duration::from_secs(1)) {
        println!(
            "200: HA server already running: {}",
            r.text.trim_start_matches("200: ")
        );
        return ExitCode::SUCCESS;
    }
    if let Err(e) = dir.create() {
        println!("400: {e}");
        return ExitCode::from(EXIT_FAILED);
    }
    let out_path = dir.root().join("ha_server.out");
    let stderr = match std::fs::File::create(&out_path) {
        Ok(f) => Stdio::from(f),
        Err(_) => Stdio::null(),
    };
    let binary = server_binary();
    let mut child = {
        use std::os::unix::process::CommandExt;
        match std::process::Command::new(&binary)
            .env("CSR_HA_DIR", dir.root())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .process_group(0)
            .spawn()
        {
            Ok(child) => child,
            Err(e) => {
                println!("400: cannot start {}: {e}", binary.display());
                return ExitCode::from(EXIT_FAILED);
            }
        }
    };
    match client::await_started(dir, &mut child, START_WAIT) {
        Ok(r) => {
            println!(
                "200: HA server started: {}",
                r.text.trim_start_matches("200: ")
            );
            ExitCode::SUCCESS
        }
        Err(client::StartError::Exited(status)) => {
            let why = std::fs::read_to_string(&out_path).unwrap_or_default();
            println!("400: HA server exited at start ({status}): {}", why.trim());
            ExitCode::from(EXIT_FAILED)
        }
        Err(client::StartError::Silent(waited)) => {
            println!(
                "400: HA server did not answer within {} s; see {}",
                waited.as_secs(),
                out_path.display()
            );
            ExitCode::from(EXIT_NO_SERVER)
        }
    }
}

fn stop(dir: &HaDir) -> ExitCode {
    match client::request(dir, Command::Stop, client::REPLY_WAIT) {
        Ok(_) => {
            let until = Instant::now() + START_WAIT;
            while Instant::now() < until && dir.request_fifo().exists() {
                std::thread::sleep(Duration::from_millis(20));
            }
            println!("200: HA server stopped");
            ExitCode::SUCCESS
        }
        Err(client::ClientError::NotRunning { .. }) => {
            println!("200: HA server is not running");
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("400: {e}");
            ExitCode::from(EXIT_NO_SERVER)
        }
    }
}

pub fn main() -> ExitCode {
    let dir = HaDir::from_env();
    let args = match Args::parse(&cli::argv(), "ha_api", |f| (f == "-c").then_some(true)) {
        Ok(args) => args,
        Err(e) => return cli::reject(e, HELP),
    };
    match args.get("-c") {
        Some("start") => start(&dir),
        Some("stop") => stop(&dir),
        Some("ping") => cli::send_and_print(&dir, Command::Ping, |r| r.text.clone()),
        other => cli::reject(
            CliError::Invalid(InvalidValue::new(
                "-c",
                other.unwrap_or(""),
                "start, stop or ping (required)",
            )),
            HELP,
        ),
    }
}
