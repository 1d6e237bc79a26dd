//! One module per request kind, mini-redis style: each holds the client half (flags → typed
//! [`Command`], help, rendering the reply) and the server half (applying it to the [`State`]).

pub mod clear_default_aad_app;
pub mod clear_params;
pub mod create_node;
pub mod delete_node;
pub mod ha_api;
pub mod node_event;
pub mod run;
pub mod set_default_aad_app;
pub mod set_params;
pub mod show_auth_applications;
pub mod show_node;
pub mod status;

use std::collections::BTreeMap;

use crate::event_mgr::{Answer, EventMgr, Reply};
use crate::node::{LastEvent, Node, Param, Provider, Value};
use crate::node_db::NodeDb;
use crate::protocol::{Command, Line, NodeParams, Response, Status};
use crate::work::{Action, Work};

/// What the server keeps between requests.
#[derive(Debug)]
pub struct State {
    pub dir: crate::paths::HaDir,
    pub db: NodeDb,
    /// Each node's last event, for `show_node` (kept in memory; the event files hold history).
    pub last_events: BTreeMap<u16, LastEvent>,
    /// Each node's last dry run (`lastCheck`).
    pub last_checks: BTreeMap<u16, LastEvent>,
    /// Refused frames so far, reported by `ping`.
    pub bad_frames: u64,
    /// Requests dropped unapplied because their client had stopped waiting, reported by `ping`.
    pub stale_requests: u64,
    /// Node events run and failed, and dry runs, since the server started (`ha_api -c status`).
    pub events_run: u64,
    pub events_failed: u64,
    pub dry_runs: u64,
    pub started: std::time::SystemTime,
    pub started_at: std::time::Instant,
}

impl State {
    /// A server's state over `db`, with the last events and checks kept in `dir` for its nodes.
    pub fn new(dir: crate::paths::HaDir, db: NodeDb) -> State {
        let load = |path: &std::path::Path| -> BTreeMap<u16, LastEvent> {
            crate::node_db::load_last_events(path)
                .into_iter()
                .filter(|(index, _)| db.nodes().any(|n| n.index.get() == *index))
                .collect()
        };
        State {
            last_events: load(&dir.last_events_file()),
            last_checks: load(&dir.last_checks_file()),
            dir,
            db,
            bad_frames: 0,
            stale_requests: 0,
            events_run: 0,
            events_failed: 0,
            dry_runs: 0,
            started: std::time::SystemTime::now(),
            started_at: std::time::Instant::now(),
        }
    }

    /// Keeps what a finished job leaves for `show_node` and the counters; the files are
    /// rewritten after the replies are sent, off the failover path ([`Self::save_records`]).
    pub fn record(&mut self, answer: &Answer) -> bool {
        for (index, last) in &answer.last_events {
            self.events_run += 1;
            self.events_failed += u64::from(!last.ok());
            self.last_events.insert(*index, last.clone());
        }
        for (index, last) in &answer.last_checks {
            self.dry_runs += 1;
            self.last_checks.insert(*index, last.clone());
        }
        !answer.last_events.is_empty() || !answer.last_checks.is_empty()
    }

    /// Rewrites `last_events.json` and `last_checks.json`.
    pub fn save_records(&self) {
        let dir = &self.dir;
        crate::node_db::save_last_events(&dir.last_events_file(), &self.last_events);
        crate::node_db::save_last_events(&dir.last_checks_file(), &self.last_checks);
    }

    /// A deleted node's last event and check go with it.
    pub fn forget_records(&mut self, index: u16) {
        let events = self.last_events.remove(&index).is_some();
        let checks = self.last_checks.remove(&index).is_some();
        if events || checks {
            self.save_records();
        }
    }
}

/// What applying a command asks the server to do next.
pub enum Applied {
    /// Reply now.
    Reply(Response),
    /// Run these handlers (one per route table); `reply` makes the answer once they are done.
    Handlers { works: Vec<Work>, reply: Reply },
    /// Reply, then shut down.
    Stop(Response),
}

/// Applies one request (server side) to the node database and, for `status`, reads the event
/// manager's queue. Every value is validated again here: the FIFO is open to any local writer,
/// not only our clients.
pub fn apply(state: &mut State, events: &EventMgr, command: Command) -> Applied {
    match command {
        Command::Ping => Applied::Reply(ha_api::ping(state)),
        Command::Stop => Applied::Stop(Response::ok("HA server stopping")),
        Command::CreateNode(request) => match validated(request) {
            Ok(request) => create_node::apply(state, request),
            Err(r) => Applied::Reply(r),
        },
        Command::SetParams(request) => match validated(request) {
            Ok(request) => set_params::apply(state, request),
            Err(r) => Applied::Reply(r),
        },
        Command::ClearParams { index, params } => clear_params::apply(state, index, params),
        Command::DeleteNode { index } => delete_node::apply(state, index),
        Command::ShowNode { target } => Applied::Reply(show_node::apply(state, target)),
        Command::NodeEvent {
            target,
            max,
            event,
            dry_run,
        } => node_event::apply(state, target, max, event, dry_run),
        Command::Status => Applied::Reply(status::apply(state, &events.jobs())),
    }
}

/// A create/set request whose values the server has checked and parsed itself.
pub struct Validated {
    pub index: crate::node::NodeIndex,
    pub provider: Provider,
    pub values: Vec<(Param, Value)>,
}

/// Re-checks and parses every parameter against its provider (the FIFO is open to any local
/// writer); the first bad one is the reply.
fn validated(request: NodeParams) -> Result<Validated, Response> {
    let provider = request.provider;
    let mut values = Vec::with_capacity(request.params.len());
    for (param, text) in &request.params {
        if !provider.params().contains(param) {
            return Err(Response::bad(format!(
                "{} ({}) is not a {provider} parameter",
                param.flag(),
                param.key()
            )));
        }
        let value = param
            .validate(text, provider)
            .map_err(|e| Response::bad(e.to_string()))?;
        values.push((*param, value));
    }
    Ok(Validated {
        index: request.index,
        provider,
        values,
    })
}

/// The node `request` makes, and whether it existed: the existing node with the given
/// parameters set over its own, or a new one. `Err` is the answer when the existing node is of
/// another cloud than the client's.
pub(crate) fn updated(state: &State, request: Validated) -> Result<(Node, bool), Response> {
    let Validated {
        index,
        provider,
        values,
    } = request;
    let (mut node, existed) = match state.db.get(index) {
        Some(existing) => match provider_mismatch(existing, provider) {
            Some(r) => return Err(r),
            None => (existing.clone(), true),
        },
        None => (Node::new(index, provider), false),
    };
    for (param, value) in values {
        node.set(param, value);
    }
    Ok((node, existed))
}

/// `-a` (Azure app id) is only usable with its tenant and key.
fn check_app_credentials(node: &Node) -> Result<(), Response> {
    if node.provider == Provider::Azure
        && node.get(Param::AppId).is_some()
        && (node.get(Param::TenantId).is_none() || node.get(Param::AppKey).is_none())
    {
        return Err(Response::bad(
            "-a <app id> needs -d <tenant id> and -k <app key>",
        ));
    }
    Ok(())
}

/// Stores `node` and builds the reply: `headline` with the node's configuration, a `199`
/// warning first when the node still lacks what its provider needs. Complete nodes are checked
/// against the live route table before the reply goes out.
pub(crate) fn store_and_reply(state: &mut State, node: Node, headline: String) -> Applied {
    if let Err(r) = check_app_credentials(&node) {
        return Applied::Reply(r);
    }
    let index = node.index;
    if let Err(e) = state.db.put(node.clone()) {
        log::error!("node {index}: cannot store: {e}");
        return Applied::Reply(Response::bad(format!("node {index} not stored: {e}")));
    }
    log::info!("node {index}: stored ({headline})");
    let config = format!("Redundancy node configuration:\n{}", node.describe());
    let missing = node.missing();
    if missing.is_empty() {
        let works = vec![work(state, Action::Check, vec![node])];
        let reply: Reply = Box::new(move |outcomes| checked(headline, &config, outcomes));
        return Applied::Handlers { works, reply };
    }
    let warning = format!(
        "Warning: node {index} is not complete for {}: missing {}",
        node.provider,
        describe_params(&missing)
    );
    let lines = vec![
        Line::status(Status::Warning, warning),
        Line::plain(headline),
    ];
    Applied::Reply(Response::of(lines).with_body(&config))
}

/// The answer to a create/set whose node was checked against its live route table: the
/// `headline` and the stored node's `config`, behind a `199` warning when the check found a
/// problem.
fn checked(headline: String, config: &str, outcomes: Vec<crate::work::NodeOutcome>) -> Answer {
    for o in &outcomes {
        log::info!(
            "node {} check: {}: {}",
            o.index,
            o.outcome.code(),
            o.message
        );
    }
    let warning = outcomes.iter().find_map(|o| match o.outcome {
        Status::Ok => None,
        Status::Warning => Some(o.message.clone()),
        Status::Failed => Some(format!(
            "Warning: could not check the node against its route table: {}",
            o.message
        )),
    });
    let lines = match warning {
        None => vec![Line::status(Status::Ok, headline)],
        Some(warning) => {
            // One line per finding, as the original listed them (a region, an ENI, a route).
            let mut found = warning.lines();
            let first = found.next().unwrap_or_default().to_string();
            std::iter::once(Line::status(Status::Warning, first))
                .chain(found.map(Line::plain))
                .chain([
                    Line::plain("Please verify the node configuration"),
                    Line::plain(headline),
                ])
                .collect()
        }
    };
    let response = Response::of(lines).with_body(config);
    Answer {
        response,
        last_events: Vec::new(),
        last_checks: Vec::new(),
    }
}

/// One handler's work: `nodes` (sharing one route table) and what to do with them.
pub(crate) fn work(state: &State, action: Action, nodes: Vec<Node>) -> Work {
    let provider = nodes.first().map(|n| n.provider).unwrap_or(Provider::File);
    Work {
        action,
        provider,
        ha_dir: state.dir.root().display().to_string(),
        deadline_ms: 0,
        nodes,
    }
}

/// `-t (routeTable) -n (nextHop)`.
pub fn describe_params(params: &[Param]) -> String {
    params
        .iter()
        .map(|p| format!("{} ({})", p.flag(), p.key()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The provider mismatch message when a node was created under another cloud.
fn provider_mismatch(node: &Node, provider: Provider) -> Option<Response> {
    (node.provider != provider).then(|| {
        Response::bad(format!(
            "node {} is a {} node but this client is configured for {provider} \
             (CSR_HA_CLOUD or $CSR_HA_DIR/cloud); set CSR_HA_CLOUD={} to change it",
            node.index, node.provider, node.provider
        ))
    })
}
