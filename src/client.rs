//! The client half of the wire: a private reply FIFO, one request frame, a bounded wait.
//!
//! ```text
//! mkfifo replies/<pid>-<nonce> (0600), open it O_RDONLY|O_NONBLOCK
//! write one FRAME to ha_server.fifo (O_WRONLY|O_NONBLOCK: ENXIO = no server, retried 0.5 s;
//!   EAGAIN = the FIFO is full, poll(POLLOUT) for room until the client's own wait ends)
//! poll the reply FIFO until the length-prefixed reply is whole or the wait ends
//! ```
//! Every wait is bounded: a client never hangs, whatever the server does. A crowd of clients
//! fills the request FIFO (64 KiB: 16 frames) faster than the server drains it; a client then
//! waits for room as long as its own timeout allows, not a fixed half second.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::stat::Mode;

use crate::paths::HaDir;
use crate::protocol::{self, Command, Request, Response};

/// How long a client keeps retrying while no server reads the request FIFO (one is starting).
pub const CONNECT_WAIT: Duration = Duration::from_millis(500);
/// Default wait for a reply.
pub const REPLY_WAIT: Duration = Duration::from_secs(2);
/// `create_node`/`set_params` wait for the live route-table check as well.
pub const CHECKED_WAIT: Duration = Duration::from_secs(10);
/// `node_event` waits for every handler of the event.
pub const EVENT_WAIT: Duration = Duration::from_secs(60);

/// Why no reply came.
#[derive(Debug)]
pub enum ClientError {
    NotRunning {
        fifo: PathBuf,
    },
    NoReply {
        waited: Duration,
    },
    /// The server has the FIFO open but it stayed full for the client's whole wait.
    FifoFull {
        fifo: PathBuf,
        waited: Duration,
    },
    Io(String),
    Frame(protocol::FrameError),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::NotRunning { fifo } => write!(
                f,
                "HA server is not running (nothing reads {}); start it with ha_api -c start",
                fifo.display()
            ),
            ClientError::NoReply { waited } => write!(
                f,
                "HA server did not answer within {:.1} s; check csr_ha.log or raise CSR_HA_TIMEOUT",
                waited.as_secs_f64()
            ),
            ClientError::FifoFull { fifo, waited } => write!(
                f,
                "HA server did not take the request within {:.1} s: {} stayed full (the server \
                 is overloaded or stopped); check csr_ha.log or raise CSR_HA_TIMEOUT",
                waited.as_secs_f64(),
                fifo.display()
            ),
            ClientError::Io(m) => f.write_str(m),
            ClientError::Frame(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ClientError {}

/// The reply wait for `command`: `CSR_HA_TIMEOUT` (seconds) overrides every default;
/// `CSR_HA_EVENT_TIMEOUT` overrides `node_event`'s alone.
pub fn wait_for(command: &Command) -> Duration {
    let env = |var: &str| {
        std::env::var(var)
            .ok()
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s > 0.0)
            .map(Duration::from_secs_f64)
    };
    let default = match command {
        Command::NodeEvent { .. } => env("CSR_HA_EVENT_TIMEOUT").unwrap_or(EVENT_WAIT),
        Command::CreateNode(_) | Command::SetParams(_) => CHECKED_WAIT,
        _ => REPLY_WAIT,
    };
    env("CSR_HA_TIMEOUT").unwrap_or(default)
}

/// Removes the reply FIFO however the request ends.
struct ReplyFifo {
    path: PathBuf,
    file: File,
}

impl Drop for ReplyFifo {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn open_reply_fifo(dir: &HaDir) -> Result<ReplyFifo, ClientError> {
    let replies = dir.replies();
    if !replies.is_dir() {
        return Err(ClientError::NotRunning {
            fifo: dir.request_fifo(),
        });
    }
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    for attempt in 0..16u32 {
        let name = format!("{}-{:08x}", std::process::id(), nonce.wrapping_add(attempt));
        let path = replies.join(&name);
        match nix::unistd::mkfifo(&path, Mode::S_IRUSR | Mode::S_IWUSR) {
            Ok(()) => {
                let fd = nix::fcntl::open(
                    &path,
                    OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
                    Mode::empty(),
                );
                return match fd {
                    Ok(fd) => Ok(ReplyFifo {
                        path,
                        file: File::from(fd),
                    }),
                    Err(e) => {
                        let _ = std::fs::remove_file(&path);
                        Err(ClientError::Io(format!(
                            "cannot open reply FIFO {}: {e}",
                            path.display()
                        )))
                    }
                };
            }
            Err(Errno::EEXIST) => continue,
            Err(e) => {
                return Err(ClientError::Io(format!(
                    "cannot create reply FIFO in {}: {e}",
                    replies.display()
                )))
            }
        }
    }
    Err(ClientError::Io(format!(
        "cannot find a free reply FIFO name in {}",
        replies.display()
    )))
}

/// Writes the frame: retries the open until `connect_until` while no server reads the FIFO,
/// then waits for room in it until `until` (the client's whole wait).
fn send_frame(
    dir: &HaDir,
    frame: &[u8],
    connect_until: Instant,
    until: Instant,
    wait: Duration,
) -> Result<(), ClientError> {
    let fifo = dir.request_fifo();
    loop {
        let opened = nix::fcntl::open(
            &fifo,
            OFlag::O_WRONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::empty(),
        );
        match opened {
            Ok(fd) => return write_when_room(&fifo, File::from(fd), frame, until, wait),
            Err(Errno::ENXIO | Errno::ENOENT) if Instant::now() < connect_until => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(Errno::ENXIO | Errno::ENOENT) => return Err(ClientError::NotRunning { fifo }),
            Err(e) => {
                return Err(ClientError::Io(format!(
                    "cannot open {}: {e}",
                    fifo.display()
                )))
            }
        }
    }
}

/// Writes `frame` whole (it is at most PIPE_BUF, so it goes in at once or not at all), waiting
/// with poll(POLLOUT) while the FIFO is full, until `until`.
fn write_when_room(
    fifo: &std::path::Path,
    mut file: File,
    frame: &[u8],
    until: Instant,
    wait: Duration,
) -> Result<(), ClientError> {
    loop {
        let err = match file.write(frame) {
            Ok(n) if n == frame.len() => return Ok(()),
            Ok(n) => {
                return Err(ClientError::Io(format!(
                    "short write of {n} bytes to {}",
                    fifo.display()
                )))
            }
            Err(e) => Errno::from_raw(e.raw_os_error().unwrap_or(0)),
        };
        match err {
            Errno::EINTR => {}
            Errno::EAGAIN => {
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(ClientError::FifoFull {
                        fifo: fifo.to_path_buf(),
                        waited: wait,
                    });
                }
                // Another writer may take the room first: then the write says EAGAIN again.
                let mut fds = [PollFd::new(file.as_fd(), PollFlags::POLLOUT)];
                let ms = left.as_millis().clamp(1, 1000) as u16;
                match nix::poll::poll(&mut fds, PollTimeout::from(ms)) {
                    Ok(_) | Err(Errno::EINTR) => {}
                    Err(e) => {
                        return Err(ClientError::Io(format!("poll on {}: {e}", fifo.display())))
                    }
                }
            }
            // The server closed the FIFO meanwhile (it stopped).
            Errno::EPIPE => {
                return Err(ClientError::NotRunning {
                    fifo: fifo.to_path_buf(),
                })
            }
            e => {
                return Err(ClientError::Io(format!(
                    "cannot write to {}: {e}",
                    fifo.display()
                )))
            }
        }
    }
}

/// Why a server the caller has just started is not serving.
#[derive(Debug)]
pub enum StartError {
    /// It exited before it answered (a corrupt node_file, another server holding the pid lock).
    Exited(std::process::ExitStatus),
    /// It is still running but did not answer `ping` in time.
    Silent(Duration),
}

/// Pings the server the caller has just spawned as `child` until it answers, it exits, or
/// `within` passes. Asking the child between pings reports a server that died at start at once
/// rather than after the whole wait.
pub fn await_started(
    dir: &HaDir,
    child: &mut std::process::Child,
    within: Duration,
) -> Result<Response, StartError> {
    let until = Instant::now() + within;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(StartError::Exited(status));
        }
        let left = until.saturating_duration_since(Instant::now());
        match request(dir, Command::Ping, left.min(Duration::from_millis(500))) {
            Ok(reply) if reply.succeeded() => return Ok(reply),
            _ if left.is_zero() => return Err(StartError::Silent(within)),
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Sends `command` and waits up to `wait` for the reply.
pub fn request(dir: &HaDir, command: Command, wait: Duration) -> Result<Response, ClientError> {
    let started = Instant::now();
    let mut reply = open_reply_fifo(dir)?;
    let name = reply
        .path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    let frame =
        protocol::encode_request(&Request::new(name, command, wait)).map_err(ClientError::Frame)?;
    let deadline = started + wait;
    send_frame(
        dir,
        &frame[..],
        started + CONNECT_WAIT.min(wait),
        deadline,
        wait,
    )?;
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        if let Some(len) = protocol::reply_len(&buf) {
            if len > protocol::MAX_REPLY {
                return Err(ClientError::Io(format!(
                    "reply announces {len} bytes, more than allowed"
                )));
            }
            if buf.len() >= 4 + len {
                return protocol::decode_reply(&buf[..4 + len]).map_err(ClientError::Frame);
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ClientError::NoReply { waited: wait });
        }
        let mut fds = [PollFd::new(reply.file.as_fd(), PollFlags::POLLIN)];
        let ms = left.as_millis().min(u128::from(u16::MAX)) as u16;
        match nix::poll::poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) | Err(Errno::EINTR) => continue,
            Ok(_) => {}
            Err(e) => return Err(ClientError::Io(format!("poll on reply FIFO: {e}"))),
        }
        match reply.file.read(&mut chunk) {
            Ok(0) => {
                // The server closed before a whole reply arrived; wait for a new writer.
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ClientError::Io(format!("reading reply: {e}"))),
        }
    }
}
