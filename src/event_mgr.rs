//! The event manager: which nodes an event touches, and the handler processes that do the work.
//!
//! Nodes that share a route table form one group, handed to one `ha_event_handler` process so
//! the table is read once and its writes are serialised. Handlers run beside the server's poll
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
//! 2. check             the read-only check after create/set; a user is waiting; never
//!                      waits for a busy table (it writes nothing)
//! 3. revert, verify    the cron jobs
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Stdio};
use std::time::{Duration, Instant, SystemTime};

use crate::cloud::{Action, NodeOutcome, Outcome, Work};
use crate::cmd::{describe_params, State};
use crate::event::EventKind;
use crate::node::{LastEvent, Mode, Node, NodeIndex, Param, Provider};
use crate::protocol::{Response, Target};
use crate::reply::Client;

/// Time kept back from a handler's deadline for its reply to reach a client before the client
/// gives up.
const REPLY_MARGIN: Duration = Duration::from_millis(250);

/// One node's line decided without a handler (skipped, nothing to do).
#[derive(Debug, Clone)]
pub struct Decided {
    pub index: u16,
    pub outcome: Outcome,
    pub message: String,
}

/// What an event (or a post-create check) will do: one `Work` per route table.
#[derive(Debug)]
pub struct Plan {
    pub action: Action,
    pub groups: Vec<Work>,
    pub decided: Vec<Decided>,
}

/// Decides, per node, what `event` needs; `Err` is the reply when nothing can run at all.
pub fn plan(
    state: &State,
    target: Target,
    max: Option<NodeIndex>,
    event: EventKind,
) -> Result<Plan, Response> {
    let nodes: Vec<&Node> = match (target, max) {
        (Target::One(index), None) => match state.db.get(index) {
            Some(node) => vec![node],
            None => {
                return Err(Response::bad(format!(
                    "400: Node with index {index} not found"
                )))
            }
        },
        (Target::One(first), Some(last)) => {
            if last < first {
                return Err(Response::bad(format!(
                    "400: -mi {last} must be at least -i {first}"
                )));
            }
            let nodes: Vec<&Node> = state
                .db
                .nodes()
                .filter(|n| n.index >= first && n.index <= last)
                .collect();
            if nodes.is_empty() {
                return Err(Response::bad(format!(
                    "400: No redundancy nodes found in range {first}-{last}"
                )));
            }
            nodes
        }
        (Target::All, _) => {
            if event == EventKind::PeerFail {
                return Err(Response::bad(
                    "400: peerFail cannot be sent to all nodes; name the node with -i <index> (or a range with -mi)",
                ));
            }
            if state.db.is_empty() {
                return Err(Response::bad("400: No redundancy nodes found"));
            }
            state.db.nodes().collect()
        }
    };
    let single = matches!((target, max), (Target::One(_), None));
    let mut decided = Vec::new();
    let mut groups: BTreeMap<String, Vec<Node>> = BTreeMap::new();
    for node in nodes {
        let index = node.index.get();
        let missing = node.missing();
        // GCP reverts every node (its own route is re-inserted whatever the mode).
        let skip_secondary = event == EventKind::Revert
            && node.provider != Provider::Gcp
            && node.mode() != Mode::Primary;
        if skip_secondary {
            if single {
                decided.push(Decided {
                    index,
                    outcome: Outcome::Ok,
                    message: "secondary node, nothing to do (revert acts on primary nodes)".into(),
                });
            }
            continue;
        }
        if !missing.is_empty() {
            decided.push(Decided {
                index,
                outcome: Outcome::Failed,
                message: format!(
                    "skipped: missing {} needed for {} events",
                    describe_params(&missing),
                    node.provider
                ),
            });
            continue;
        }
        groups
            .entry(table_key(node))
            .or_default()
            .push(node.clone());
    }
    if groups.is_empty() && decided.is_empty() {
        return Err(Response::ok(format!(
            "200: No primary nodes configured, {event} event aborted"
        )));
    }
    let action = Action::Event(event);
    let groups = groups
        .into_values()
        .map(|nodes| work(state, action, nodes))
        .collect();
    Ok(Plan {
        action,
        groups,
        decided,
    })
}

/// The read-only check run after `create_node`/`set_params` stored a complete node.
pub fn check_plan(state: &State, node: Node) -> Plan {
    Plan {
        action: Action::Check,
        groups: vec![work(state, Action::Check, vec![node])],
        decided: Vec::new(),
    }
}

fn work(state: &State, action: Action, nodes: Vec<Node>) -> Work {
    let provider = nodes.first().map(|n| n.provider).unwrap_or(Provider::File);
    Work {
        action,
        provider,
        ha_dir: state.dir.root().display().to_string(),
        deadline_ms: 0,
        nodes,
    }
}

/// Nodes with equal keys share a route table and so one handler.
fn table_key(node: &Node) -> String {
    let keys: &[Param] = match node.provider {
        Provider::File => &[Param::RouteTable],
        Provider::Aws => &[Param::Region, Param::RouteTableId],
        Provider::Azure => &[
            Param::Cloud,
            Param::SubscriptionId,
            Param::ResourceGroup,
            Param::RouteTableName,
        ],
        Provider::Gcp => &[Param::Project, Param::Vpc],
    };
    let mut key = node.provider.to_string();
    for p in keys {
        key.push('/');
        key.push_str(node.get(*p).unwrap_or_default());
    }
    key
}

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
    action: Action,
    /// For a check: the reply to send, amended with the check's warning.
    check_reply: Option<Response>,
    remaining: usize,
    decided: Vec<Decided>,
    outcomes: Vec<NodeOutcome>,
    started: SystemTime,
}

struct Handler {
    job: u64,
    nodes: Vec<u16>,
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
    priority: u8,
    job: u64,
    work: Work,
    /// The table's identity (see [`table_key`]); `None` for a read-only check.
    table: Option<String>,
    deadline: Duration,
}

/// Lower starts first: failover, then the check a user waits for, then the cron jobs.
fn priority(action: Action) -> u8 {
    match action {
        Action::Event(EventKind::PeerFail) => 0,
        Action::Check => 1,
        Action::Event(EventKind::Revert | EventKind::Verify) => 2,
    }
}

/// A finished job: who to answer and with what.
pub struct Finished {
    pub client: Client,
    pub response: Response,
    /// Last-event records to keep (events only, not checks).
    pub last_events: Vec<(u16, LastEvent)>,
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

    /// Queues a plan's handlers; the reply is produced once all of them are done. Nothing is
    /// started for a client past `client_deadline`.
    pub fn submit(
        &mut self,
        client: Client,
        client_deadline: Instant,
        plan: Plan,
        check_reply: Option<Response>,
    ) {
        let id = self.next_job;
        self.next_job += 1;
        let deadline = match plan.action {
            Action::Check => self.limits.check_deadline,
            Action::Event(_) => self.limits.event_deadline,
        };
        let job = Job {
            client,
            client_deadline,
            action: plan.action,
            check_reply,
            remaining: plan.groups.len(),
            decided: plan.decided,
            outcomes: Vec::new(),
            started: SystemTime::now(),
        };
        self.jobs.insert(id, job);
        let nodes: Vec<u16> = plan
            .groups
            .iter()
            .flat_map(|w| w.nodes.iter().map(|n| n.index.get()))
            .collect();
        if !nodes.is_empty() {
            log::info!(
                "{} for node(s) {nodes:?}: {} route table(s) queued",
                plan.action.label(),
                plan.groups.len()
            );
        }
        for work in plan.groups {
            let table = match work.action {
                Action::Check => None,
                Action::Event(_) => work.nodes.first().map(table_key),
            };
            self.queue.push(Queued {
                seq: self.next_seq,
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
                response: Response::bad("400: HA server stopped before the event finished"),
                last_events: Vec::new(),
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
        self.finished.push(match job.action {
            Action::Event(kind) => finish_event(job, kind),
            Action::Check => finish_check(job),
        });
    }
}

/// The same failure for every node of a handler that did not run.
fn failed(nodes: &[u16], message: &str) -> Vec<NodeOutcome> {
    nodes
        .iter()
        .map(|&index| NodeOutcome {
            index,
            outcome: Outcome::Failed,
            message: message.to_string(),
            duration_ms: 0,
        })
        .collect()
}

fn finish_event(job: Job, kind: EventKind) -> Finished {
    let mut lines: Vec<(u16, Outcome, String)> = job
        .decided
        .into_iter()
        .map(|d| (d.index, d.outcome, d.message))
        .collect();
    let time = crate::timestamp::local(job.started, crate::timestamp::EVENT_TIME);
    let mut last_events = Vec::new();
    for o in &job.outcomes {
        last_events.push((
            o.index,
            LastEvent {
                event: kind.to_string(),
                time: time.clone(),
                outcome: format!("{}: {}", o.outcome.code(), o.message),
                duration_ms: o.duration_ms,
            },
        ));
        lines.push((o.index, o.outcome, o.message.clone()));
        let level = if o.outcome == Outcome::Failed {
            log::Level::Warn
        } else {
            log::Level::Info
        };
        log::log!(
            level,
            "node {} {kind}: {}: {}",
            o.index,
            o.outcome.code(),
            o.message
        );
    }
    lines.sort_by_key(|(index, _, _)| *index);
    let code = overall(lines.iter().map(|(_, o, _)| *o));
    let text = lines
        .iter()
        .map(|(index, outcome, message)| {
            format!("{}: node {index} {kind}: {message}", outcome.code())
        })
        .collect::<Vec<_>>()
        .join("\n");
    Finished {
        client: job.client,
        response: Response::new(code, text),
        last_events,
    }
}

fn finish_check(job: Job) -> Finished {
    for o in &job.outcomes {
        log::info!(
            "node {} check: {}: {}",
            o.index,
            o.outcome.code(),
            o.message
        );
    }
    let base = job
        .check_reply
        .unwrap_or_else(|| Response::ok("200: stored"));
    let warning = job.outcomes.iter().find_map(|o| match o.outcome {
        Outcome::Ok => None,
        Outcome::Warning => Some(o.message.clone()),
        Outcome::Failed => Some(format!(
            "Warning: could not check the node against its route table: {}",
            o.message
        )),
    });
    let response = match warning {
        None => base,
        Some(warning) => {
            let body = base.text.strip_prefix("200: ").unwrap_or(&base.text);
            Response::new(
                199,
                format!("199: {warning}\nPlease verify the node configuration\n{body}"),
            )
        }
    };
    Finished {
        client: job.client,
        response,
        last_events: Vec::new(),
    }
}

fn overall(outcomes: impl Iterator<Item = Outcome>) -> u16 {
    let mut code = 200;
    for o in outcomes {
        code = match (code, o) {
            (_, Outcome::Failed) | (400, _) => 400,
            (_, Outcome::Warning) | (199, _) => 199,
            _ => 200,
        };
    }
    code
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
                    outcome: Outcome::Failed,
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
