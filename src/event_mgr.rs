//! The event manager: queues, spawns, feeds, reaps and times out `ha_event_handler` processes.
//!
//! It is handed a job: one [`Work`] per route table and a [`Reply`] that turns the handlers'
//! outcomes into the client's answer. Which nodes an event touches and how the answer reads
//! are the commands' business (`cmd::node_event`, the check in `cmd`); this module only
//! supervises processes. Handlers run beside the server's poll
//! loop: their pipes are polled with the request FIFO, so a slow cloud never freezes
//! `show_node` or `ping`. At most `CSR_HA_MAX_HANDLERS` (8) run at once; each is killed after
//! `CSR_HA_HANDLER_TIMEOUT` (30 s) and reported.
//!
//! One job per route table at a time: an event whose table already has a handler running waits
//! in the queue, so a `verify` that read a route can never write it back over a `peerFail` that
//! ran meanwhile. Queued work starts in this order, each class in arrival order:
//!
//! ```text
//! 1. peerFail          a failover never waits behind cron work on other tables
//! 2. check, dry run    the read-only check after create/set and `node_event --dry-run`;
//!                      a user is waiting; never waits for a busy table (it writes nothing)
//! 3. revert, verify    the cron jobs
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Stdio};
use std::time::{Duration, Instant};

use crate::event::EventKind;
use crate::node::LastEvent;
use crate::protocol::Response;
use crate::protocol::Status;
use crate::reply::Client;
use crate::work::{Action, NodeOutcome, Work};

pub use crate::view::JobView;

/// Turns every node's outcome (in no particular order) into the client's answer.
pub type Reply = Box<dyn FnOnce(Vec<NodeOutcome>) -> Answer>;

/// What a finished job tells its client, and what it leaves for `show_node`.
pub struct Answer {
    pub response: Response,
    /// Last-event records to keep (events only, not checks or dry runs).
    pub last_events: Vec<(u16, LastEvent)>,
    /// Last dry runs to keep (`lastCheck`).
    pub last_checks: Vec<(u16, LastEvent)>,
}

/// Time kept back from a handler's deadline for its reply to reach a client before the client
/// gives up.
const REPLY_MARGIN: Duration = Duration::from_millis(250);

/// Limits and paths, from the environment.
#[derive(Debug, Clone)]
pub struct Limits {
    pub handler: PathBuf,
    pub max_running: usize,
    pub event_deadline: Duration,
    pub check_deadline: Duration,
}

impl Limits {
    pub fn from_env() -> Limits {
        let secs = |var: &str, default: f64| {
            let s = std::env::var(var)
                .ok()
                .and_then(|v| v.trim().parse::<f64>().ok());
            Duration::from_secs_f64(s.filter(|s| s.is_finite() && *s > 0.0).unwrap_or(default))
        };
        let handler = std::env::var_os("CSR_HA_HANDLER")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                std::env::current_exe()
                    .ok()
                    .and_then(|e| e.parent().map(|d| d.join("ha_event_handler")))
            })
            .unwrap_or_else(|| PathBuf::from("ha_event_handler"));
        let max_running = std::env::var("CSR_HA_MAX_HANDLERS")
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|n| *n > 0)
            .unwrap_or(8);
        Limits {
            handler,
            max_running,
            event_deadline: secs("CSR_HA_HANDLER_TIMEOUT", 30.0),
            check_deadline: secs("CSR_HA_CHECK_TIMEOUT", 5.0),
        }
    }
}

/// A client waiting for an event's (or check's) handlers.
struct Job {
    client: Client,
    /// When the client stops waiting: work not started by then is not started at all.
    client_deadline: Instant,
    remaining: usize,
    outcomes: Vec<NodeOutcome>,
    reply: Reply,
}

struct Handler {
    job: u64,
    nodes: Vec<u16>,
    /// What it does and on which table, for `ha_api -c status`.
    label: String,
    table_id: String,
    started: Instant,
    /// The route table this handler holds; `None` for a read-only check.
    table: Option<String>,
    child: Child,
    stdin: Option<ChildStdin>,
    input: Vec<u8>,
    written: usize,
    stdout: Option<ChildStdout>,
    output: Vec<u8>,
    deadline: Instant,
    deadline_len: Duration,
    killed: bool,
}

/// Work waiting for a handler slot and for its route table to be free.
struct Queued {
    seq: u64,
    arrived: Instant,
    priority: u8,
    job: u64,
    work: Work,
    /// The table's identity ([`crate::node::Node::route_table_id`]); `None` for a check.
    table: Option<String>,
    deadline: Duration,
}

/// Lower starts first: failover, then the check a user waits for, then the cron jobs.
fn priority(action: Action) -> u8 {
    match action {
        Action::Event(EventKind::PeerFail) => 0,
        Action::Check | Action::DryRun(_) => 1,
        Action::Event(EventKind::Revert | EventKind::Verify) => 2,
    }
}

/// A finished job: who to answer and with what.
pub struct Finished {
    pub client: Client,
    pub answer: Answer,
}

/// What the poll loop watches for the handlers.
#[derive(Debug, Clone, Copy)]
pub enum HandlerFd {
    Stdin(usize),
    Stdout(usize),
}

/// Runs handler processes for jobs; driven by the server's poll loop.
pub struct EventMgr {
    limits: Limits,
    jobs: BTreeMap<u64, Job>,
    next_job: u64,
    queue: Vec<Queued>,
    /// Arrival number of the next queued work.
    next_seq: u64,
    /// Route tables with a writing handler running.
    busy: BTreeSet<String>,
    running: Vec<Handler>,
    finished: Vec<Finished>,
}

impl EventMgr {
    pub fn new(limits: Limits) -> EventMgr {
        EventMgr {
            limits,
            jobs: BTreeMap::new(),
            next_job: 1,
            queue: Vec::new(),
            next_seq: 0,
            busy: BTreeSet::new(),
            running: Vec::new(),
            finished: Vec::new(),
        }
    }

    /// Queues a job's handlers (one per route table); `reply` makes the answer once all of
    /// them are done. Nothing is started for a client past `client_deadline`.
    pub fn submit(
        &mut self,
        client: Client,
        client_deadline: Instant,
        works: Vec<Work>,
        reply: Reply,
    ) {
        let id = self.next_job;
        self.next_job += 1;
        let job = Job {
            client,
            client_deadline,
            remaining: works.len(),
            outcomes: Vec::new(),
            reply,
        };
        self.jobs.insert(id, job);
        for work in works {
            let nodes: Vec<u16> = work.nodes.iter().map(|n| n.index.get()).collect();
            log::info!("{} for node(s) {nodes:?}: queued", work.action.label());
            let (table, deadline) = match work.action {
                // Read-only work never waits for a busy table.
                Action::Check => (None, self.limits.check_deadline),
                Action::DryRun(_) => (None, self.limits.event_deadline),
                Action::Event(_) => (
                    work.nodes.first().map(|n| n.route_table_id()),
                    self.limits.event_deadline,
                ),
            };
            self.queue.push(Queued {
                seq: self.next_seq,
                arrived: Instant::now(),
                priority: priority(work.action),
                job: id,
                work,
                table,
                deadline,
            });
            self.next_seq += 1;
        }
        self.finish_if_done(id);
        self.start_queued();
    }

    /// Handlers running now.
    pub fn running(&self) -> usize {
        self.running.len()
    }

    /// Fds to poll, with what each one is.
    pub fn poll_fds(&self) -> Vec<(BorrowedFd<'_>, bool, HandlerFd)> {
        let mut fds = Vec::new();
        for (i, h) in self.running.iter().enumerate() {
            if let Some(stdin) = &h.stdin {
                fds.push((stdin.as_fd(), true, HandlerFd::Stdin(i)));
            }
            if let Some(stdout) = &h.stdout {
                fds.push((stdout.as_fd(), false, HandlerFd::Stdout(i)));
            }
        }
        fds
    }

    /// The earliest handler deadline, so the poll loop wakes up for it.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.running
            .iter()
            .filter(|h| !h.killed)
            .map(|h| h.deadline)
            .min()
    }

    /// Moves bytes on a handler pipe that poll said is ready.
    pub fn on_ready(&mut self, fd: HandlerFd) {
        match fd {
            HandlerFd::Stdin(i) => {
                if let Some(h) = self.running.get_mut(i) {
                    feed(h);
                }
            }
            HandlerFd::Stdout(i) => {
                if let Some(h) = self.running.get_mut(i) {
                    drain(h);
                }
            }
        }
    }

    /// Kills overdue handlers, reaps exited ones (SIGCHLD or not), starts queued work.
    pub fn tick(&mut self) {
        let now = Instant::now();
        for h in &mut self.running {
            if !h.killed && now >= h.deadline {
                log::warn!(
                    "handler pid {} for node(s) {:?} passed its deadline: killing it",
                    h.child.id(),
                    h.nodes
                );
                let _ = h.child.kill();
                h.killed = true;
            }
        }
        let mut i = 0;
        while i < self.running.len() {
            match self.running[i].child.try_wait() {
                Ok(Some(status)) => {
                    let mut h = self.running.swap_remove(i);
                    if let Some(table) = &h.table {
                        self.busy.remove(table);
                    }
                    drain(&mut h);
                    let outcomes = outcomes_of(&h, status);
                    self.record(h.job, outcomes);
                }
                Ok(None) => i += 1,
                Err(e) => {
                    log::error!(
                        "cannot wait for handler pid {}: {e}",
                        self.running[i].child.id()
                    );
                    i += 1;
                }
            }
        }
        self.start_queued();
    }

    /// Handlers running, then work waiting, each with its table and age (`ha_api -c status`).
    pub fn jobs(&self) -> Vec<JobView> {
        let now = Instant::now();
        let running = self.running.iter().map(|h| JobView {
            table: h.table_id.clone(),
            action: h.label.clone(),
            nodes: h.nodes.clone(),
            running: true,
            age_ms: now.duration_since(h.started).as_millis() as u64,
        });
        let mut waiting: Vec<&Queued> = self.queue.iter().collect();
        waiting.sort_by_key(|q| (q.priority, q.seq));
        let waiting = waiting.into_iter().map(|q| JobView {
            table: table_of(&q.work),
            action: q.work.action.title(),
            nodes: q.work.nodes.iter().map(|n| n.index.get()).collect(),
            running: false,
            age_ms: now.duration_since(q.arrived).as_millis() as u64,
        });
        running.chain(waiting).collect()
    }

    /// Replies ready to send.
    pub fn take_finished(&mut self) -> Vec<Finished> {
        std::mem::take(&mut self.finished)
    }

    /// Kills every handler (server shutdown) and answers their clients.
    pub fn shutdown(&mut self) {
        for h in &mut self.running {
            let _ = h.child.kill();
            let _ = h.child.wait();
        }
        self.running.clear();
        self.busy.clear();
        self.queue.clear();
        for (_, job) in std::mem::take(&mut self.jobs) {
            self.finished.push(Finished {
                client: job.client,
                answer: Answer {
                    response: Response::bad("HA server stopped before the event finished"),
                    last_events: Vec::new(),
                    last_checks: Vec::new(),
                },
            });
        }
    }

    /// Which queued work may start now: the first by (priority, arrival) whose table is free.
    fn next_startable(&self) -> Option<usize> {
        self.queue
            .iter()
            .enumerate()
            .filter(|(_, q)| q.table.as_ref().is_none_or(|t| !self.busy.contains(t)))
            .min_by_key(|(_, q)| (q.priority, q.seq))
            .map(|(i, _)| i)
    }

    fn start_queued(&mut self) {
        while self.running.len() < self.limits.max_running {
            let Some(i) = self.next_startable() else {
                break;
            };
            let Queued {
                job,
                mut work,
                table,
                deadline,
                ..
            } = self.queue.remove(i);
            let nodes: Vec<u16> = work.nodes.iter().map(|n| n.index.get()).collect();
            // The handler must be done (and its reply sent) before the client stops waiting.
            let client_left = self
                .jobs
                .get(&job)
                .map(|j| j.client_deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_default()
                .saturating_sub(REPLY_MARGIN);
            if client_left.is_zero() {
                log::warn!(
                    "{} for node(s) {nodes:?}: not started, its client stopped waiting",
                    work.action.label()
                );
                let outcomes = failed(&nodes, "not started: the client stopped waiting");
                self.record(job, outcomes);
                continue;
            }
            let deadline = deadline.min(client_left);
            // Leave the handler time to report before it is killed.
            work.deadline_ms = deadline.mul_f64(0.9).as_millis() as u64;
            match self.spawn(job, &work, deadline, nodes.clone()) {
                Ok(mut h) => {
                    if let Some(table) = table {
                        self.busy.insert(table.clone());
                        h.table = Some(table);
                    }
                    self.running.push(h);
                }
                Err(e) => {
                    log::error!("cannot start {}: {e}", self.limits.handler.display());
                    let message = format!(
                        "cannot start event handler {}: {e}",
                        self.limits.handler.display()
                    );
                    self.record(job, failed(&nodes, &message));
                }
            }
        }
    }

    fn spawn(
        &self,
        job: u64,
        work: &Work,
        deadline: Duration,
        nodes: Vec<u16>,
    ) -> std::io::Result<Handler> {
        let input = serde_json::to_vec(work).map_err(std::io::Error::other)?;
        // std::process::Command forks and execs; every fd the server opened is close-on-exec,
        // so the handler inherits only these three.
        let mut child = std::process::Command::new(&self.limits.handler)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        for fd in [
            stdin.as_ref().map(|s| s.as_raw_fd()),
            stdout.as_ref().map(|s| s.as_raw_fd()),
        ]
        .into_iter()
        .flatten()
        {
            set_nonblocking(fd)?;
        }
        log::info!(
            "{} for node(s) {:?}: handler pid {} started",
            work.action.label(),
            nodes,
            child.id()
        );
        let mut h = Handler {
            job,
            nodes,
            label: work.action.title(),
            table_id: table_of(work),
            started: Instant::now(),
            table: None,
            child,
            stdin,
            input,
            written: 0,
            stdout,
            output: Vec::new(),
            deadline: Instant::now() + deadline,
            deadline_len: deadline,
            killed: false,
        };
        feed(&mut h);
        Ok(h)
    }

    fn record(&mut self, id: u64, outcomes: Vec<NodeOutcome>) {
        if let Some(job) = self.jobs.get_mut(&id) {
            job.outcomes.extend(outcomes);
            job.remaining = job.remaining.saturating_sub(1);
        }
        self.finish_if_done(id);
    }

    fn finish_if_done(&mut self, id: u64) {
        if self.jobs.get(&id).is_none_or(|j| j.remaining > 0) {
            return;
        }
        let Some(job) = self.jobs.remove(&id) else {
            return;
        };
        self.finished.push(Finished {
            client: job.client,
            answer: (job.reply)(job.outcomes),
        });
    }
}

/// The route table a work is on ([`crate::node::Node::route_table_id`]).
fn table_of(work: &Work) -> String {
    work.nodes
        .first()
        .map(|n| n.route_table_id())
        .unwrap_or_default()
}

/// The same failure for every node of a handler that did not run.
fn failed(nodes: &[u16], message: &str) -> Vec<NodeOutcome> {
    nodes
        .iter()
        .map(|&index| NodeOutcome {
            index,
            outcome: Status::Failed,
            message: message.to_string(),
            duration_ms: 0,
        })
        .collect()
}

/// One outcome per node of the handler: its report, or why there is none.
fn outcomes_of(h: &Handler, status: std::process::ExitStatus) -> Vec<NodeOutcome> {
    use std::os::unix::process::ExitStatusExt;
    let reported: Vec<NodeOutcome> = if status.success() {
        serde_json::from_slice(&h.output).unwrap_or_default()
    } else {
        Vec::new()
    };
    let why = if h.killed {
        format!(
            "event handler killed after its {:.0} s deadline",
            h.deadline_len.as_secs_f64()
        )
    } else if let Some(signal) = status.signal() {
        format!("event handler crashed (signal {signal})")
    } else if !status.success() {
        format!("event handler failed ({status})")
    } else {
        "event handler gave no result for this node".to_string()
    };
    h.nodes
        .iter()
        .map(|&index| {
            reported
                .iter()
                .find(|o| o.index == index)
                .cloned()
                .unwrap_or_else(|| NodeOutcome {
                    index,
                    outcome: Status::Failed,
                    message: why.clone(),
                    duration_ms: 0,
                })
        })
        .collect()
}

fn feed(h: &mut Handler) {
    let Some(stdin) = h.stdin.as_mut() else {
        return;
    };
    while h.written < h.input.len() {
        match stdin.write(&h.input[h.written..]) {
            Ok(n) => h.written += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break, // the handler died; tick() reports it
        }
    }
    h.stdin = None; // closing stdin tells the handler the work is complete
}

fn drain(h: &mut Handler) {
    let Some(stdout) = h.stdout.as_mut() else {
        return;
    };
    let mut buf = [0u8; 16 * 1024];
    loop {
        match stdout.read(&mut buf) {
            Ok(0) => {
                h.stdout = None;
                return;
            }
            Ok(n) => h.output.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        }
    }
}

fn set_nonblocking(fd: std::os::fd::RawFd) -> std::io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    // SAFETY: fd belongs to a ChildStdin/ChildStdout we own for the duration of this call.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    let flags =
        OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL).map_err(std::io::Error::from)?);
    fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK)).map_err(std::io::Error::from)?;
    Ok(())
}
