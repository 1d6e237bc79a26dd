//! The server: one thread, one poll(2) loop.
//!
//! ```text
//! poll ─┬─ ha_server.fifo (O_RDWR: never EOF)  → frames → cmd::apply → reply or handlers
//!       ├─ SIGTERM/SIGINT pipe                 → clean exit (FIFO and pid file removed)
//!       ├─ SIGCHLD pipe                        → reap handlers, finish their jobs
//!       ├─ handler stdin/stdout pipes          → feed work, collect results
//!       └─ pending replies (POLLOUT)           → finish long replies; 1 s per client at most
//! ```
//! A request is applied only while its client still waits: a frame read after the client's
//! deadline is dropped and counted, and the client's reply FIFO is opened before anything is
//! changed (see [`crate::reply`]). Every 250 ms the loop checks that `ha_server.fifo` and
//! `replies/` still exist and recreates what was removed.
//! Nothing in the loop blocks: a client that does not read, a handler stuck on a slow cloud,
//! or garbage on the FIFO costs other clients nothing.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg, OFlag};
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::stat::Mode;

use crate::cmd::{self, Applied, State};
use crate::event_mgr::{EventMgr, HandlerFd, Limits};
use crate::node_db::NodeDb;
use crate::paths::HaDir;
use crate::protocol::{self, FrameReader, Response};
use crate::reply::{Client, Gone, Outgoing};

pub use crate::reply::REPLY_DEADLINE;
/// A partial frame older than this is garbage.
const PARTIAL_FRAME_AGE: Duration = Duration::from_secs(1);
/// A request with less time left than this is not applied: its reply would come too late.
const APPLY_MARGIN: Duration = Duration::from_millis(50);
/// How often the server checks that its FIFO and `replies/` are still where clients look.
const REACHABLE_CHECK: Duration = Duration::from_millis(250);
/// At most one log line per this interval about bad frames, with their count: garbage on the
/// FIFO (50 MB of it once made 6,679 lines) must not fill the router's small disk.
const BAD_FRAME_LOG_EVERY: Duration = Duration::from_secs(10);

/// Bad frames seen since the last line about them, logged at most once per
/// [`BAD_FRAME_LOG_EVERY`]: the first at once, the rest as one line with their count.
#[derive(Debug)]
struct BadFrameLog {
    unlogged: u64,
    last_reason: String,
    next_line: Instant,
}

impl BadFrameLog {
    fn new() -> BadFrameLog {
        BadFrameLog {
            unlogged: 0,
            last_reason: String::new(),
            next_line: Instant::now(),
        }
    }

    /// Counts one bad frame (`reason`), and logs if a line is due.
    fn seen(&mut self, reason: String, total: u64) {
        self.unlogged += 1;
        self.last_reason = reason;
        self.flush(total);
    }

    /// Logs the frames not yet logged, if any and if a line is due.
    fn flush(&mut self, total: u64) {
        let now = Instant::now();
        if self.unlogged == 0 || now < self.next_line {
            return;
        }
        log::warn!(
            "request FIFO: dropped {} bad frame(s) (last: {}); {total} since start",
            self.unlogged,
            self.last_reason
        );
        self.unlogged = 0;
        self.next_line = now + BAD_FRAME_LOG_EVERY;
    }
}

/// Why the server could not start.
#[derive(Debug)]
pub enum ServerError {
    AlreadyRunning { pid: String, pid_file: String },
    Setup(String),
}

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServerError::AlreadyRunning { pid, pid_file } => {
                write!(
                    f,
                    "another ha_server (pid {pid}) is running: it holds the lock on {pid_file}"
                )
            }
            ServerError::Setup(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for ServerError {}

/// What a ready fd in the poll set is.
#[derive(Clone, Copy)]
enum Slot {
    Requests,
    Terminate,
    Child,
    Reply(usize),
    Handler(HandlerFd),
}

/// Takes the pid-file lock; a stale file from a killed server holds no lock and is reused.
fn lock_pid_file(dir: &HaDir) -> Result<Flock<File>, ServerError> {
    let path = dir.pid_file();
    let file = crate::fs_util::open_owner_only(&path, crate::fs_util::OpenFor::ReadWrite)
        .map_err(|e| ServerError::Setup(format!("cannot open {}: {e}", path.display())))?;
    let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => lock,
        Err((mut file, Errno::EWOULDBLOCK)) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            return Err(ServerError::AlreadyRunning {
                pid: pid.trim().to_string(),
                pid_file: path.display().to_string(),
            });
        }
        Err((_, e)) => {
            return Err(ServerError::Setup(format!(
                "cannot lock {}: {e}",
                path.display()
            )))
        }
    };
    let written = lock
        .set_len(0)
        .and_then(|_| writeln!(&mut *lock, "{}", std::process::id()))
        .and_then(|_| lock.sync_all());
    written.map_err(|e| ServerError::Setup(format!("cannot write {}: {e}", path.display())))?;
    Ok(lock)
}

/// Creates (if needed) and opens the request FIFO read-write, so it never reports EOF.
fn open_request_fifo(dir: &HaDir) -> Result<File, ServerError> {
    let path = dir.request_fifo();
    match std::fs::symlink_metadata(&path) {
        Ok(meta) if meta.file_type().is_fifo() => {}
        Ok(_) => {
            return Err(ServerError::Setup(format!(
                "{} exists and is not a FIFO; remove it and start again",
                path.display()
            )))
        }
        // Owner-only: requests change routes, so only the HA user may send them.
        Err(_) => nix::unistd::mkfifo(&path, Mode::from_bits_truncate(0o600)).map_err(|e| {
            ServerError::Setup(format!("cannot create FIFO {}: {e}", path.display()))
        })?,
    }
    let fd = nix::fcntl::open(
        &path,
        OFlag::O_RDWR | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| ServerError::Setup(format!("cannot open FIFO {}: {e}", path.display())))?;
    Ok(File::from(fd))
}

/// The inode of the request FIFO at its path, if it is still there.
fn fifo_inode_at(dir: &HaDir) -> Option<u64> {
    std::fs::symlink_metadata(dir.request_fifo())
        .ok()
        .filter(|m| m.file_type().is_fifo())
        .map(|m| m.ino())
}

/// Lets the server hold one fd per waiting client however many wait: raises the soft open-file
/// limit to the hard one.
fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
}

fn signal_pipe(signals: &[i32]) -> Result<UnixStream, ServerError> {
    let setup =
        |e: std::io::Error| ServerError::Setup(format!("cannot set up signal handling: {e}"));
    let (read, write) = UnixStream::pair().map_err(setup)?;
    read.set_nonblocking(true).map_err(setup)?;
    for &signal in signals {
        let write = write.try_clone().map_err(setup)?;
        signal_hook::low_level::pipe::register(signal, write).map_err(setup)?;
    }
    Ok(read)
}

fn drain_pipe(mut pipe: &UnixStream) {
    let mut buf = [0u8; 64];
    while matches!(pipe.read(&mut buf), Ok(n) if n > 0) {}
}

/// Marks every fd the server inherited (beyond stdio) close-on-exec, so event handlers get
/// exactly their three pipes whatever started the server.
fn close_inherited_fds_on_exec() {
    use nix::fcntl::{fcntl, FcntlArg, FdFlag};
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<i32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
        .filter(|fd| *fd > 2)
        .collect();
    for fd in fds {
        // SAFETY: only the fd's flags are touched; fds that closed meanwhile just fail.
        let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        let _ = fcntl(borrowed, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC));
    }
}

/// Runs the server in the foreground until SIGTERM, SIGINT or `ha_api -c stop`.
pub fn run(dir: HaDir) -> Result<(), ServerError> {
    close_inherited_fds_on_exec();
    raise_fd_limit();
    dir.create()
        .map_err(|e| ServerError::Setup(e.to_string()))?;
    let pid_lock = lock_pid_file(&dir)?;
    // From here on the directory is ours: a failed start leaves no tmpfs replies behind.
    let setup = || -> Result<_, ServerError> {
        let db = NodeDb::load(&dir).map_err(|e| ServerError::Setup(e.to_string()))?;
        let fifo = open_request_fifo(&dir)?;
        let terminate = signal_pipe(&[signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT])?;
        let child_exit = signal_pipe(&[signal_hook::consts::SIGCHLD])?;
        Ok((db, fifo, terminate, child_exit))
    };
    let (db, fifo, terminate, child_exit) = setup().inspect_err(|_| {
        dir.remove_runtime_replies();
    })?;
    remove_stale_replies(&dir);
    log::info!(
        "ha_server pid {} serving {} with {} node(s)",
        std::process::id(),
        dir.root().display(),
        db.len()
    );

    let mut server = Server {
        state: State::new(dir.clone(), db),
        events: EventMgr::new(Limits::from_env()),
        fifo_inode: fifo.metadata().map(|m| m.ino()).ok(),
        fifo,
        next_reach_check: Instant::now() + REACHABLE_CHECK,
        reader: FrameReader::default(),
        bad_frame_log: BadFrameLog::new(),
        last_bytes: Instant::now(),
        outgoing: Vec::new(),
        stopping: false,
    };
    server.serve(&terminate, &child_exit);
    server.shutdown();
    let _ = std::fs::remove_file(dir.request_fifo());
    dir.remove_runtime_replies();
    if let Err(e) = crate::cloud::token_cache::clear(&dir) {
        log::warn!(
            "cannot remove cached credentials {}: {e}",
            dir.credential_cache().display()
        );
    }
    let _ = std::fs::remove_file(dir.pid_file());
    drop(pid_lock);
    log::info!("ha_server pid {} stopped", std::process::id());
    Ok(())
}

struct Server {
    state: State,
    events: EventMgr,
    /// The request FIFO, open read-write, and the inode it had at its path.
    fifo: File,
    fifo_inode: Option<u64>,
    next_reach_check: Instant,
    reader: FrameReader,
    bad_frame_log: BadFrameLog,
    last_bytes: Instant,
    outgoing: Vec<Outgoing>,
    stopping: bool,
}

impl Server {
    fn serve(&mut self, terminate: &UnixStream, child_exit: &UnixStream) {
        while !self.stopping {
            let ready = self.wait(terminate, child_exit);
            for (slot, flags) in ready {
                match slot {
                    Slot::Requests => self.read_requests(),
                    Slot::Terminate => {
                        drain_pipe(terminate);
                        log::info!("ha_server: signal received, stopping");
                        self.stopping = true;
                    }
                    Slot::Child => drain_pipe(child_exit),
                    Slot::Reply(i) => {
                        if flags.intersects(PollFlags::POLLERR | PollFlags::POLLHUP) {
                            self.outgoing[i].deadline = Instant::now();
                        } else {
                            self.outgoing[i].write_some();
                        }
                    }
                    Slot::Handler(fd) => self.events.on_ready(fd),
                }
            }
            self.events.tick();
            self.send_finished();
            self.expire();
            self.keep_reachable();
        }
    }

    /// Recreates `ha_server.fifo` and `replies/` if someone removed them while we run, so
    /// clients find the server again within a second.
    fn keep_reachable(&mut self) {
        let now = Instant::now();
        if now < self.next_reach_check {
            return;
        }
        self.next_reach_check = now + REACHABLE_CHECK;
        let dir = self.state.dir.clone();
        if !dir.replies().is_dir() {
            match dir.create() {
                Ok(()) => log::warn!("{} was removed: recreated", dir.replies().display()),
                Err(e) => log::error!("cannot recreate {}: {e}", dir.replies().display()),
            }
        }
        let at_path = fifo_inode_at(&dir);
        if at_path.is_some() && at_path == self.fifo_inode {
            return;
        }
        // Frames written to the old FIFO before it was unlinked are still ours to read.
        self.read_requests();
        match open_request_fifo(&dir) {
            Ok(fifo) => {
                self.fifo_inode = fifo.metadata().map(|m| m.ino()).ok();
                self.fifo = fifo;
                log::warn!(
                    "{} was removed or replaced: listening on a new one",
                    dir.request_fifo().display()
                );
            }
            Err(e) => log::error!("{e}"),
        }
    }

    /// One poll over everything; returns the ready slots.
    fn wait(&self, terminate: &UnixStream, child_exit: &UnixStream) -> Vec<(Slot, PollFlags)> {
        let mut slots = vec![Slot::Requests, Slot::Terminate, Slot::Child];
        let mut fds = vec![
            PollFd::new(self.fifo.as_fd(), PollFlags::POLLIN),
            PollFd::new(terminate.as_fd(), PollFlags::POLLIN),
            PollFd::new(child_exit.as_fd(), PollFlags::POLLIN),
        ];
        for (i, o) in self.outgoing.iter().enumerate() {
            slots.push(Slot::Reply(i));
            fds.push(PollFd::new(o.file().as_fd(), PollFlags::POLLOUT));
        }
        for (fd, write, which) in self.events.poll_fds() {
            slots.push(Slot::Handler(which));
            fds.push(PollFd::new(
                fd,
                if write {
                    PollFlags::POLLOUT
                } else {
                    PollFlags::POLLIN
                },
            ));
        }
        let now = Instant::now();
        let wake = [
            Some(self.next_reach_check),
            self.outgoing.iter().map(|o| o.deadline).min(),
            self.events.next_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(now);
        // Handlers are also reaped on a short tick in case a SIGCHLD was coalesced.
        let mut timeout = wake.saturating_duration_since(now);
        if self.events.running() > 0 {
            timeout = timeout.min(Duration::from_millis(50));
        }
        let ms = timeout.as_millis().min(1000) as u16;
        match nix::poll::poll(&mut fds, PollTimeout::from(ms)) {
            Ok(n) if n > 0 => {}
            Ok(_) | Err(Errno::EINTR) => return Vec::new(),
            Err(e) => {
                log::error!("poll failed: {e}");
                std::thread::sleep(Duration::from_millis(10));
                return Vec::new();
            }
        }
        fds.iter()
            .zip(slots)
            .filter_map(|(fd, slot)| fd.revents().filter(|r| !r.is_empty()).map(|r| (slot, r)))
            .collect()
    }

    fn read_requests(&mut self) {
        let mut buf = [0u8; protocol::FRAME * 4];
        loop {
            match (&self.fifo).read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    self.reader.push(&buf[..n]);
                    self.last_bytes = Instant::now();
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
            self.handle_frames();
        }
        self.handle_frames();
    }

    fn handle_frames(&mut self) {
        while let Some(frame) = self.reader.next_frame() {
            match frame {
                Ok(request) => self.handle(request),
                Err(e) => {
                    self.state.bad_frames = self.reader.bad_frames;
                    self.bad_frame_log
                        .seen(e.to_string(), self.reader.bad_frames);
                }
            }
        }
    }

    /// Applies a request whose client still waits for it; anything else is dropped unapplied.
    fn handle(&mut self, request: protocol::Request) {
        let left = request.time_left();
        if left < APPLY_MARGIN {
            self.state.stale_requests += 1;
            log::warn!(
                "request from {} read after its client stopped waiting: dropped, not applied ({} so far)",
                request.reply_to,
                self.state.stale_requests
            );
            return;
        }
        let client = match Client::open(&self.state.dir, &request.reply_to) {
            Ok(client) => client,
            Err(Gone::Left) => {
                self.state.stale_requests += 1;
                log::warn!(
                    "client {} has gone: its request is dropped, not applied",
                    request.reply_to
                );
                return;
            }
            Err(Gone::BadName | Gone::Refused) => return,
        };
        let client_deadline = Instant::now() + left;
        match cmd::apply(&mut self.state, &self.events, request.command) {
            Applied::Reply(response) => self.reply(client, &response),
            Applied::Stop(response) => {
                self.reply(client, &response);
                self.stopping = true;
            }
            Applied::Handlers { works, reply } => {
                self.events.submit(client, client_deadline, works, reply)
            }
        }
        self.send_finished();
    }

    fn send_finished(&mut self) {
        let mut recorded = false;
        for finished in self.events.take_finished() {
            let answer = finished.answer;
            recorded |= self.state.record(&answer);
            self.reply(finished.client, &answer.response);
        }
        // After the replies: the record is for show_node, not on the failover path.
        if recorded {
            self.state.save_records();
        }
    }

    /// Starts a reply; whatever does not fit the FIFO now is finished by the poll loop.
    fn reply(&mut self, client: Client, response: &Response) {
        let mut out = client.answer(response);
        if !out.write_some() {
            self.outgoing.push(out);
        }
    }

    /// Drops replies whose client did not read in time or has gone; trims a stale partial frame.
    fn expire(&mut self) {
        let now = Instant::now();
        self.outgoing.retain(|o| {
            let keep = !o.done() && o.deadline > now;
            if !keep && !o.done() {
                log::warn!(
                    "reply to {} dropped: client did not read it within {:?}",
                    o.client.name,
                    REPLY_DEADLINE
                );
            }
            keep
        });
        if self.reader.pending() > 0 && now.duration_since(self.last_bytes) > PARTIAL_FRAME_AGE {
            self.reader.discard_partial();
            self.state.bad_frames = self.reader.bad_frames;
            self.bad_frame_log
                .seen("an incomplete frame".into(), self.reader.bad_frames);
        }
        self.bad_frame_log.flush(self.reader.bad_frames);
    }

    fn shutdown(&mut self) {
        self.events.shutdown();
        self.send_finished();
        let until = Instant::now() + REPLY_DEADLINE;
        while !self.outgoing.is_empty() && Instant::now() < until {
            for o in &mut self.outgoing {
                o.write_some();
            }
            self.outgoing.retain(|o| !o.done());
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Reply FIFOs left by clients killed while waiting (a client removes its own otherwise).
fn remove_stale_replies(dir: &HaDir) {
    let Ok(entries) = std::fs::read_dir(dir.replies()) else {
        return;
    };
    let old = std::time::SystemTime::now() - Duration::from_secs(600);
    for entry in entries.flatten() {
        let stale = entry
            .metadata()
            .ok()
            .and_then(|m| m.modified().ok())
            .is_some_and(|t| t < old);
        if stale {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}
