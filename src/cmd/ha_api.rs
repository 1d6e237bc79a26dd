//! `ha_api -c start|stop|ping`: runs the server in the background, stops it, or checks it.

use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use super::run;
use super::State;
use crate::cli::{self, Args, CliError, Flag, EXIT_FAILED, EXIT_NO_SERVER};
use crate::client;
use crate::node::InvalidValue;
use crate::paths::HaDir;
use crate::protocol::{Command, Response, Status};

pub const HELP: &str = "usage: ha_api -c start|stop|ping|status [--json]\n  \
-c <value>     command         start: run ha_server in the background and wait until it answers;\n                                 \
stop: ask it to exit; ping: exit 0 only if it answers;\n                                 \
status: the server, its queue and counters, every node's last event\n                                 \
and last dry run, cached credentials (exit 1 if one failed)\n  \
--json                         status as one JSON object\n\
The server binary is $CSR_HA_SERVER, else ha_server beside ha_api.\n";

/// How long `start` and `stop` wait for the server to come up or go away.
const START_WAIT: Duration = Duration::from_secs(10);

pub fn ping(state: &State) -> Response {
    Response::ok(format!(
        "HA server is running (pid {}, {} node(s), {} bad frame(s) dropped, {} request(s) dropped after their client stopped waiting)",
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

/// The server holding the pid-file lock, found without its FIFO.
#[derive(Debug, PartialEq, Eq)]
enum LockHolder {
    /// No process holds the lock: no server runs in this directory.
    None,
    /// An `ha_server` with this pid holds it.
    Server(i32),
    /// The lock is held but the pid file does not name a live `ha_server`.
    Unknown(String),
}

/// Asks the pid file's lock (not the FIFO, which may have been removed) whether a server runs.
fn lock_holder(dir: &HaDir) -> LockHolder {
    use nix::errno::Errno;
    use nix::fcntl::{Flock, FlockArg};
    use std::io::Read;
    let path = dir.pid_file();
    let Ok(file) = std::fs::File::open(&path) else {
        return LockHolder::None;
    };
    let mut file = match Flock::lock(file, FlockArg::LockSharedNonblock) {
        Ok(_unlocked) => return LockHolder::None,
        Err((file, Errno::EWOULDBLOCK)) => file,
        Err((_, e)) => {
            return LockHolder::Unknown(format!("cannot test the lock on {}: {e}", path.display()))
        }
    };
    let mut text = String::new();
    let _ = file.read_to_string(&mut text);
    let Ok(pid) = text.trim().parse::<i32>() else {
        return LockHolder::Unknown(format!(
            "{} is locked but holds no pid ({:?})",
            path.display(),
            text.trim()
        ));
    };
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    if comm.trim() == "ha_server" {
        LockHolder::Server(pid)
    } else {
        LockHolder::Unknown(format!(
            "{} is locked, but pid {pid} is not an ha_server ({:?}); not signalling it",
            path.display(),
            comm.trim()
        ))
    }
}

/// Waits until no process holds the pid-file lock.
fn await_unlocked(dir: &HaDir) -> bool {
    let until = Instant::now() + START_WAIT;
    while Instant::now() < until {
        if lock_holder(dir) == LockHolder::None {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Pings until a server that holds the pid lock answers (it recreates a removed FIFO within a
/// second); `None` if it stays silent.
fn await_answer(dir: &HaDir) -> Option<Response> {
    let until = Instant::now() + START_WAIT;
    while Instant::now() < until {
        if let Ok(r) = ping_once(dir, Duration::from_millis(500)) {
            return Some(r);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

fn start(dir: &HaDir) -> ExitCode {
    let running = match ping_once(dir, Duration::from_secs(1)) {
        Ok(r) => Some(r),
        Err(_) => match lock_holder(dir) {
            LockHolder::Server(pid) => match await_answer(dir) {
                Some(r) => Some(r),
                None => {
                    crate::say!(
                        Status::Failed,
                        "HA server pid {pid} holds {} but does not answer; stop it with ha_api -c stop",
                        dir.pid_file().display()
                    );
                    return ExitCode::from(EXIT_NO_SERVER);
                }
            },
            _ => None,
        },
    };
    if let Some(r) = running {
        crate::say!(Status::Ok, "HA server already running: {}", r.headline());
        return ExitCode::SUCCESS;
    }
    if let Err(e) = dir.create() {
        crate::say!(Status::Failed, "{e}");
        return ExitCode::from(EXIT_FAILED);
    }
    let out_path = dir.root().join("ha_server.out");
    let mut child = match spawn_server(dir, &out_path) {
        Ok(child) => child,
        Err(message) => {
            crate::say!(Status::Failed, "{message}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    match client::await_started(dir, &mut child, START_WAIT) {
        Ok(r) => {
            crate::say!(Status::Ok, "HA server started: {}", r.headline());
            ExitCode::SUCCESS
        }
        Err(client::StartError::Exited(status)) => {
            let why = std::fs::read_to_string(&out_path).unwrap_or_default();
            crate::say!(
                Status::Failed,
                "HA server exited at start ({status}): {}",
                why.trim()
            );
            ExitCode::from(EXIT_FAILED)
        }
        Err(client::StartError::Silent(waited)) => {
            crate::say!(
                Status::Failed,
                "HA server did not answer within {} s; see {}",
                waited.as_secs(),
                out_path.display()
            );
            ExitCode::from(EXIT_NO_SERVER)
        }
    }
}

/// Starts the server in its own process group, its stderr (start errors) in `out_path` (0600).
fn spawn_server(dir: &HaDir, out_path: &std::path::Path) -> Result<std::process::Child, String> {
    use std::os::unix::process::CommandExt;
    let stderr = crate::fs_util::open_owner_only(out_path, crate::fs_util::OpenFor::Truncate)
        .map_or_else(|_| Stdio::null(), Stdio::from);
    let binary = server_binary();
    std::process::Command::new(&binary)
        .env("CSR_HA_DIR", dir.root())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", binary.display()))
}

/// Stops the server, then removes the credentials it cached on tmpfs once none runs.
fn stop(dir: &HaDir) -> ExitCode {
    let code = stop_server(dir);
    if lock_holder(dir) == LockHolder::None {
        if let Err(e) = crate::cloud::token_cache::clear(dir) {
            crate::say!(
                Status::Failed,
                "cannot remove cached credentials {}: {e}",
                dir.credential_cache().display()
            );
            return ExitCode::from(EXIT_FAILED);
        }
    }
    code
}

/// Asks the server to stop over its FIFO; if it cannot be reached there, signals the process
/// that holds the pid-file lock, after checking it is an `ha_server`.
fn stop_server(dir: &HaDir) -> ExitCode {
    let asked = client::request(dir, Command::Stop, client::REPLY_WAIT);
    let unreachable = match asked {
        Ok(_) => {
            if await_unlocked(dir) {
                crate::say!(Status::Ok, "HA server stopped");
                return ExitCode::SUCCESS;
            }
            "it said it was stopping".to_string()
        }
        Err(e) => e.to_string(),
    };
    match lock_holder(dir) {
        LockHolder::None => {
            crate::say!(Status::Ok, "HA server is not running");
            ExitCode::SUCCESS
        }
        LockHolder::Server(pid) => {
            use nix::sys::signal::{kill, Signal};
            use nix::unistd::Pid;
            if let Err(e) = kill(Pid::from_raw(pid), Signal::SIGTERM) {
                crate::say!(Status::Failed, "cannot signal HA server pid {pid}: {e}");
                return ExitCode::from(EXIT_FAILED);
            }
            if await_unlocked(dir) {
                crate::say!(
                    Status::Ok,
                    "HA server stopped (pid {pid}, by SIGTERM: {unreachable})"
                );
                ExitCode::SUCCESS
            } else {
                crate::say!(
                    Status::Failed,
                    "HA server pid {pid} did not stop within {} s of SIGTERM",
                    START_WAIT.as_secs()
                );
                ExitCode::from(EXIT_FAILED)
            }
        }
        LockHolder::Unknown(why) => {
            crate::say!(Status::Failed, "{why}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

pub fn main() -> ExitCode {
    let dir = HaDir::from_env();
    let args = match Args::parse(
        &cli::argv(),
        "ha_api",
        &[Flag::value("-c"), Flag::switch("--json")],
    ) {
        Ok(args) => args,
        Err(e) => return run::reject(e, HELP),
    };
    match args.get("-c") {
        Some("start") => start(&dir),
        Some("stop") => stop(&dir),
        Some("ping") => run::send_and_print(&dir, Command::Ping, Response::render),
        Some("status") => super::status::main(&dir, args.has("--json")),
        other => run::reject(
            CliError::Invalid(InvalidValue::new(
                "-c",
                other.unwrap_or(""),
                "start, stop, ping or status (required)",
            )),
            HELP,
        ),
    }
}
