//! Route-table providers and the work an event handler does with them.
//!
//! The server hands `ha_event_handler` one [`Work`] per route table: the event and the nodes that
//! share that table. The handler opens the provider's [`RouteTable`], reads it once, computes what
//! each node needs, writes only what differs (as the provider writes best: one file rewrite, one
//! Azure table PUT, concurrent EC2 calls) and answers with one [`NodeOutcome`] per node. A
//! peerFail of nodes with routes on a table whose writes need no read
//! ([`RouteTable::writes_unread`], EC2) is written at once, in one round trip. GCP
//! routes cannot be edited in place, so that provider plans its own work (`gcp::run`) instead of
//! going through [`apply`].
//!
//! What the clouds share lives here once: [`http`] (the client and its retry policy, the error
//! answer as a [`CloudError`]), [`secret`] (the `Secret` type and the masker) and
//! [`token_cache`] (credentials shared by handler processes). Each cloud module keeps only its
//! signing or token source, its request shapes and its error-body parser.

pub mod aws;
pub mod azure;
pub mod file;
pub mod gcp;
pub mod http;
pub mod secret;
pub mod token_cache;

use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::event::EventKind;
use crate::event_log::EventLog;
use crate::node::{Cidr, Node, Param, Provider};
use crate::protocol::Status;
use crate::work::{Action, NodeOutcome, Work};

/// A provider failure, with a message a user can act on. Never carries a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloudError {
    /// The route table itself does not exist (`route table t9 not found`).
    TableNotFound(String),
    /// The cloud's API refused: its error code and message, e.g.
    /// `AWS InvalidRouteTableID.NotFound: The routeTable ID 'rtb-0abc1234' does not exist`.
    Api {
        cloud: &'static str,
        /// The HTTP status of the answer; `None` for an error reported inside a 200 (a failed
        /// long-running operation).
        status: Option<u16>,
        code: String,
        message: String,
    },
    /// Credentials could not be had (metadata service down, bad key file, ...).
    Auth(String),
    /// The API could not be reached or answered garbage.
    Transport(String),
    /// Local trouble: a table file unreadable or malformed, a parameter missing.
    Local(String),
    /// A conditional write ([`RouteWrite::conditional`]) found the route no longer as it was read:
    /// someone else moved it meanwhile, so it was not rewritten. `now` is its next hop now.
    Changed { now: Option<String> },
}

impl fmt::Display for CloudError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloudError::TableNotFound(table) => write!(f, "route table {table} not found"),
            CloudError::Api {
                cloud,
                code,
                message,
                ..
            } => write!(f, "{cloud} {code}: {message}"),
            CloudError::Auth(m) => write!(f, "credentials: {m}"),
            CloudError::Transport(m) | CloudError::Local(m) => f.write_str(m),
            CloudError::Changed { now } => write!(
                f,
                "changed meanwhile (now via {}): not rewritten",
                now.as_deref().unwrap_or("no router")
            ),
        }
    }
}

impl std::error::Error for CloudError {}

impl CloudError {
    /// The same error with every secret masked in its text, in any form a server could have
    /// echoed it in ([`secret::mask`]).
    pub fn masked(self, secrets: &[&str]) -> CloudError {
        let m = |text: String| secret::mask(&text, secrets);
        match self {
            CloudError::TableNotFound(t) => CloudError::TableNotFound(m(t)),
            CloudError::Api {
                cloud,
                status,
                code,
                message,
            } => CloudError::Api {
                cloud,
                status,
                code: m(code),
                message: m(message),
            },
            CloudError::Auth(t) => CloudError::Auth(m(t)),
            CloudError::Transport(t) => CloudError::Transport(m(t)),
            CloudError::Local(t) => CloudError::Local(m(t)),
            CloudError::Changed { now } => CloudError::Changed { now },
        }
    }
}

/// One route as a provider reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// Canonical CIDR (`10.99.0.0/16`, `2001:db8::/32`).
    pub destination: String,
    /// The router the route points at: an ENI id (AWS) or an IP address (Azure, file).
    /// `None` for routes that point elsewhere (gateways, local).
    pub next_hop: Option<String>,
    /// Provider handle needed to write the route back (the Azure route's name); empty if unused.
    pub id: String,
    /// Why this route is never written although it may point at a router (an Azure route
    /// without a name, which ARM cannot address); `None` for every route that can be.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned: Option<String>,
}

impl Route {
    /// Only routes that point at a router may be moved; gateways and local routes never are.
    pub fn movable(&self) -> bool {
        self.next_hop.is_some()
    }
}

/// One write an event asks of a table: point `route` at `next_hop`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteWrite {
    /// The route as it was read; its `next_hop` is the value a conditional write expects.
    pub route: Route,
    pub next_hop: String,
    /// Write only if the route still points where it did when read (`verify` restores the value
    /// it read and must never undo a `peerFail` that landed in between). A provider whose API has
    /// a condition uses it; one without says so on its `write_all`.
    pub conditional: bool,
}

/// Whether this router may write a table, proven without writing (a dry run's probe).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Permission {
    /// The cloud says the write would be allowed.
    Permitted,
    /// The cloud says it would be refused, and what is missing, e.g.
    /// `ec2:ReplaceRoute on rtb-0abc1234 (UnauthorizedOperation)`.
    Denied(String),
    /// The cloud could not say (permission API disabled, no right to ask): why. A warning.
    NotProven(String),
}

impl Permission {
    /// A dry run's outcome for a node whose plan (`10.99.0.0/16 in t1 would go via 10.0.1.20
    /// (now 10.0.1.10)`) needs a write, given what the probe found: permitted `Ok`, denied
    /// `Failed`, not proven a `Warning` (the server adds `node 3 peerFail (dry run): `).
    pub fn outcome(&self, plan: &str) -> (Status, String) {
        match self {
            Permission::Permitted => (Status::Ok, format!("{plan}; write permitted")),
            Permission::Denied(what) => (Status::Failed, format!("{plan}; not permitted: {what}")),
            Permission::NotProven(why) => (
                Status::Warning,
                format!("{plan}; write permission not proven: {why}"),
            ),
        }
    }
}

/// A cloud route table: read it whole, then write what an event needs.
pub trait RouteTable {
    /// The table's name for messages (`t1`, `rtb-0a1b2c3d`).
    fn name(&self) -> String;
    /// Every route of the table.
    fn read(&mut self) -> Result<Vec<Route>, CloudError>;
    /// Applies an event's writes, one result each, in order. A conditional write that found its
    /// route changed answers [`CloudError::Changed`].
    fn write_all(&mut self, writes: &[RouteWrite]) -> Vec<Result<(), CloudError>>;
    /// Whether [`Self::write_all`] of `writes` would be permitted, asked without writing (a dry
    /// run). Called at most once per table per dry run, and only when there is a write to make.
    fn probe_write(&mut self, writes: &[RouteWrite]) -> Permission {
        let _ = writes;
        Permission::NotProven("this provider cannot prove write permission".into())
    }
    /// Whether a peerFail of nodes that each name their route (`-r`) may write without reading
    /// the table first: the write is idempotent and its answer is the confirmation (EC2
    /// `ReplaceRoute`), so the failover takes one round trip ([`apply`]). A route that is not
    /// there is the cloud's error. Revert, verify, checks and all-routes nodes always read.
    fn writes_unread(&self) -> bool {
        false
    }
}

/// The parameter that holds a node's own next hop, for providers that move routes.
pub fn next_hop_param(provider: Provider) -> Param {
    match provider {
        Provider::Aws => Param::EniId,
        Provider::Gcp => Param::NextHopIp,
        Provider::Azure | Provider::File => Param::NextHop,
    }
}

/// Runs a handler's work to completion and returns one outcome per node. Each provider has the
/// same entry point, `run(work, deadline, log)` (configured from the environment), and the
/// clouds a `run_with(work, deadline, log, &config)` that tests and benchmarks call.
pub fn run(work: &Work) -> Vec<NodeOutcome> {
    let deadline = Instant::now() + Duration::from_millis(work.deadline_ms);
    let mut log = EventLog::new(work);
    let outcomes = match work.provider {
        Provider::File => file::run(work, deadline, &mut log),
        Provider::Aws => aws::run(work, deadline, &mut log),
        Provider::Azure => azure::run(work, deadline, &mut log),
        Provider::Gcp => gcp::run(work, deadline, &mut log),
    };
    log.finish(&outcomes);
    outcomes
}

/// The event on an opened table ([`apply`]), or every node failed if it could not be opened.
pub fn run_table<T: RouteTable>(
    opened: Result<T, CloudError>,
    work: &Work,
    log: &mut EventLog,
) -> Vec<NodeOutcome> {
    match opened {
        Ok(mut table) => apply(&mut table, work, log),
        Err(e) => fail_all(work, &e, log),
    }
}

/// Every node of `work` failed with the same error (e.g. no credentials).
pub fn fail_all(work: &Work, error: &CloudError, log: &mut EventLog) -> Vec<NodeOutcome> {
    let started = Instant::now();
    work.nodes
        .iter()
        .map(|node| {
            log.line(node.index.get(), &format!("Error: {error}"));
            NodeOutcome::new(node.index.get(), Status::Failed, error.to_string(), started)
        })
        .collect()
}

/// The shared event logic of the providers that edit routes in place (AWS, Azure, file).
pub fn apply(table: &mut dyn RouteTable, work: &Work, log: &mut EventLog) -> Vec<NodeOutcome> {
    let started = Instant::now();
    if let Some(outcomes) = write_unread(table, work, log, started) {
        return outcomes;
    }
    let name = table.name();
    let mut routes = match table.read() {
        Ok(routes) => routes,
        Err(e) => {
            return match (work.action, &e) {
                (Action::Check, CloudError::TableNotFound(_)) => warn_all(
                    work,
                    &format!("Warning: Route Table {name} not found"),
                    started,
                ),
                (Action::Check, _) => warn_all(
                    work,
                    &format!("Warning: could not read Route Table {name}: {e}"),
                    started,
                ),
                _ => fail_all(work, &e, log),
            };
        }
    };
    let read_ms = started.elapsed().as_millis();
    for node in &work.nodes {
        log_table(log, node, &name, &routes, read_ms);
    }
    let (kind, dry_run) = match work.action {
        Action::Event(kind) => (kind, false),
        Action::DryRun(kind) => (kind, true),
        Action::Check => {
            return work
                .nodes
                .iter()
                .map(|node| {
                    let (outcome, message) = check_node(node, &name, &routes);
                    NodeOutcome::new(node.index.get(), outcome, message, started)
                })
                .collect();
        }
    };
    // Plan every node against the table as the writes before it will leave it, then write.
    let plans: Vec<NodePlan> = work
        .nodes
        .iter()
        .map(|node| plan_node(node, &name, &mut routes, kind, log))
        .collect();
    let writes: Vec<RouteWrite> = plans
        .iter()
        .flat_map(|p| {
            p.writes.iter().map(|w| RouteWrite {
                route: w.route.clone(),
                next_hop: w.target.clone(),
                conditional: kind == EventKind::Verify,
            })
        })
        .collect();
    if dry_run {
        // One probe for the table, and none when nothing would be written.
        let permission = (!writes.is_empty()).then(|| table.probe_write(&writes));
        return plans
            .into_iter()
            .map(|plan| {
                unless_failed(plan, started, |plan| {
                    dry_run_node(plan, &name, kind, permission.as_ref(), log, started)
                })
            })
            .collect();
    }
    let results = if writes.is_empty() {
        Vec::new()
    } else {
        table.write_all(&writes)
    };
    let mut results = results.into_iter();
    plans
        .into_iter()
        .map(|plan| {
            unless_failed(plan, started, |plan| {
                finish_node(plan, &name, kind, &mut results, log, started)
            })
        })
        .collect()
}

/// A peerFail on a table that [`RouteTable::writes_unread`], of nodes that each name their own
/// route (no two the same): each route written at once and reported from the write's answer,
/// with no read. `None` when the event must read first.
fn write_unread(
    table: &mut dyn RouteTable,
    work: &Work,
    log: &mut EventLog,
    started: Instant,
) -> Option<Vec<NodeOutcome>> {
    if work.action != Action::Event(EventKind::PeerFail) || !table.writes_unread() {
        return None;
    }
    let mut writes: Vec<RouteWrite> = Vec::new();
    for node in &work.nodes {
        let cidr = node.route()?.to_string();
        let own = node.get(next_hop_param(node.provider))?;
        if writes.iter().any(|w| w.route.destination == cidr) {
            return None;
        }
        writes.push(RouteWrite {
            route: Route {
                destination: cidr,
                next_hop: None,
                id: String::new(),
                pinned: None,
            },
            next_hop: own.to_string(),
            conditional: false,
        });
    }
    let name = table.name();
    let results = table.write_all(&writes);
    let ms = started.elapsed().as_millis();
    let outcomes = work.nodes.iter().zip(&writes).zip(results);
    let outcomes = outcomes.map(|((node, w), result)| {
        let (index, dest) = (node.index.get(), &w.route.destination);
        match result {
            Ok(()) => {
                log.wrote(
                    index,
                    &format!(
                        "Set route {dest} in {name} -> {} (not read first)",
                        w.next_hop
                    ),
                );
                let message = format!("{dest} in {name} now via {}, {ms} ms", w.next_hop);
                NodeOutcome::new(index, Status::Ok, message, started)
            }
            Err(e) => {
                log.line(index, &format!("Error writing route {dest}: {e}"));
                NodeOutcome::new(index, Status::Failed, e.to_string(), started)
            }
        }
    });
    Some(outcomes.collect())
}

/// What the node's log says of the table: its own route, or every route when it acts on all.
fn log_table(log: &mut EventLog, node: &Node, name: &str, routes: &[Route], read_ms: u128) {
    let index = node.index.get();
    log.line(
        index,
        &format!(
            "Read route table {name}: {} routes in {read_ms} ms",
            routes.len()
        ),
    );
    let own = node.route();
    for r in routes {
        if own.is_none() || r.destination.parse::<Cidr>().ok() == own {
            let hop = r.next_hop.as_deref().unwrap_or("(not a router)");
            log.line(index, &format!("  {} via {hop}", r.destination));
        }
    }
}

/// One write a node needs.
struct PlannedWrite {
    route: Route,
    target: String,
    was: String,
}

/// A node's share of an event, decided before anything is written.
struct NodePlan {
    index: u16,
    /// Why nothing can be done (route missing, no next hop).
    error: Option<String>,
    writes: Vec<PlannedWrite>,
    /// Routes already via this router.
    unchanged: Vec<String>,
    /// Router routes an all-routes event leaves where they are, and why
    /// (`2001:db8::/64 not moved: next hop 10.0.1.20 is IPv4`): the node's outcome is a warning.
    left: Vec<String>,
    own: String,
}

fn plan_node(
    node: &Node,
    name: &str,
    routes: &mut [Route],
    kind: EventKind,
    log: &mut EventLog,
) -> NodePlan {
    let index = node.index.get();
    let own = node
        .get(next_hop_param(node.provider))
        .unwrap_or_default()
        .to_string();
    let mut plan = NodePlan {
        index,
        error: None,
        writes: Vec::new(),
        unchanged: Vec::new(),
        left: Vec::new(),
        own: own.clone(),
    };
    if own.is_empty() {
        plan.error = Some("node has no next hop (-n)".into());
        return plan;
    }
    let Targets { found, left } = match targets(node, name, routes) {
        Ok(targets) => targets,
        Err(message) => {
            log.line(index, &format!("Error: {message}"));
            plan.error = Some(message);
            return plan;
        }
    };
    // `verify` moves nothing: a route it leaves out was not going to change.
    if kind != EventKind::Verify {
        for note in &left {
            log.line(index, &format!("Warning: {note}"));
        }
        plan.left = left;
    }
    for i in found {
        let was = routes[i].next_hop.clone().unwrap_or_default();
        let target = if kind == EventKind::Verify {
            was.clone()
        } else {
            own.clone()
        };
        if kind != EventKind::Verify && was == own {
            log.line(
                index,
                &format!(
                    "Route {} already via {own}: no write",
                    routes[i].destination
                ),
            );
            plan.unchanged.push(routes[i].destination.clone());
            continue;
        }
        plan.writes.push(PlannedWrite {
            route: routes[i].clone(),
            target: target.clone(),
            was,
        });
        routes[i].next_hop = Some(target);
    }
    plan
}

impl NodePlan {
    /// What the node's event leaves as it is, as its line says it: the routes already via this
    /// router (`… already via 10.0.1.20` and `suffix`), then those it cannot move and why.
    fn not_written(&self, suffix: &str) -> Vec<String> {
        let already = (!self.unchanged.is_empty()).then(|| {
            format!(
                "{} already via {}{suffix}",
                self.unchanged.join(", "),
                self.own
            )
        });
        already
            .into_iter()
            .chain(self.left.iter().cloned())
            .collect()
    }
}

/// A node whose plan found it cannot act (route missing, no next hop) fails with the reason;
/// the others are finished by `finish`.
fn unless_failed(
    mut plan: NodePlan,
    started: Instant,
    finish: impl FnOnce(NodePlan) -> NodeOutcome,
) -> NodeOutcome {
    match plan.error.take() {
        Some(message) => NodeOutcome::new(plan.index, Status::Failed, message, started),
        None => finish(plan),
    }
}

fn finish_node(
    plan: NodePlan,
    name: &str,
    kind: EventKind,
    results: &mut impl Iterator<Item = Result<(), CloudError>>,
    log: &mut EventLog,
    started: Instant,
) -> NodeOutcome {
    let index = plan.index;
    let mut done = Vec::new();
    let mut changed = Vec::new();
    let mut failure = None;
    for w in &plan.writes {
        let dest = &w.route.destination;
        match results
            .next()
            .unwrap_or_else(|| Err(CloudError::Local("write not attempted".into())))
        {
            Ok(()) => {
                log.wrote(
                    index,
                    &format!("Set route {dest}: {} -> {}", w.was, w.target),
                );
                done.push(if kind == EventKind::Verify {
                    format!("{dest} in {name} verified via {}", w.target)
                } else {
                    format!("{dest} in {name} now via {} (was {})", w.target, w.was)
                });
            }
            Err(e @ CloudError::Changed { .. }) => {
                let note = format!("{dest} in {name} {e}");
                log.line(index, &note);
                changed.push(note);
            }
            Err(e) => {
                log.line(index, &format!("Error writing route {dest}: {e}"));
                failure.get_or_insert(e.to_string());
            }
        }
    }
    let ms = started.elapsed().as_millis();
    done.extend(changed.iter().cloned());
    if let Some(mut message) = failure {
        if !done.is_empty() {
            message = format!("{message} (after {})", done.join("; "));
        }
        return NodeOutcome::new(index, Status::Failed, message, started);
    }
    let no_write = if done.is_empty() { ", no write" } else { "" };
    let mut parts = done.clone();
    parts.extend(plan.not_written(no_write));
    let message = if parts.is_empty() {
        format!("no route in {name} points at a router, no write")
    } else if done.is_empty() {
        parts.join("; ")
    } else {
        format!("{}, {ms} ms", parts.join("; "))
    };
    let outcome = if changed.is_empty() && plan.left.is_empty() {
        Status::Ok
    } else {
        Status::Warning
    };
    NodeOutcome::new(index, outcome, message, started)
}

/// A dry run's outcome for one node: what its event would write, and whether the table's probe
/// found that permitted; a node with nothing to write needs no permission.
fn dry_run_node(
    plan: NodePlan,
    name: &str,
    kind: EventKind,
    permission: Option<&Permission>,
    log: &mut EventLog,
    started: Instant,
) -> NodeOutcome {
    let index = plan.index;
    let mut parts: Vec<String> = plan
        .writes
        .iter()
        .map(|w| {
            let dest = &w.route.destination;
            if kind == EventKind::Verify {
                format!("{dest} in {name} would be written back via {}", w.was)
            } else {
                format!("{dest} in {name} would go via {} (now {})", w.target, w.was)
            }
        })
        .collect();
    parts.extend(plan.not_written(""));
    let plan_text = parts.join("; ");
    let (status, message) = match permission {
        Some(permission) if !plan.writes.is_empty() => permission.outcome(&plan_text),
        _ if plan_text.is_empty() => (
            Status::Ok,
            format!("no route in {name} points at a router, no write needed"),
        ),
        _ => (Status::Ok, format!("{plan_text}, no write needed")),
    };
    let status = if plan.left.is_empty() {
        status
    } else {
        status.max(Status::Warning)
    };
    log.line(index, &format!("Dry run: {message}"));
    NodeOutcome::new(index, status, message, started)
}

fn warn_all(work: &Work, message: &str, started: Instant) -> Vec<NodeOutcome> {
    work.nodes
        .iter()
        .map(|n| NodeOutcome::new(n.index.get(), Status::Warning, message, started))
        .collect()
}

/// The routes a node acts on, as indices into the table, and the router routes it leaves alone.
#[derive(Debug, Default)]
struct Targets {
    found: Vec<usize>,
    /// `<prefix> not moved: <why>` for each route another router holds that this node's event
    /// cannot move (another address family than its next hop, or [`Route::pinned`]).
    left: Vec<String>,
}

/// The routes a node acts on: its `-r` route, or every router route of the table that its next
/// hop can carry (an IPv4 next hop never takes an IPv6 prefix, nor the reverse) and the
/// provider can write.
fn targets(node: &Node, table: &str, routes: &[Route]) -> Result<Targets, String> {
    let own = node.get(next_hop_param(node.provider)).unwrap_or_default();
    let Some(cidr) = node.route() else {
        let mut targets = Targets::default();
        for (i, route) in routes.iter().enumerate().filter(|(_, r)| r.movable()) {
            let why = route
                .pinned
                .clone()
                .or_else(|| other_family(&route.destination, own));
            match why {
                None => targets.found.push(i),
                Some(why) if route.next_hop.as_deref() != Some(own) => targets
                    .left
                    .push(format!("{} not moved: {why}", route.destination)),
                Some(_) => {}
            }
        }
        return Ok(targets);
    };
    let found = routes
        .iter()
        .position(|r| r.destination.parse::<Cidr>().ok() == Some(cidr));
    match found {
        None => Err(format!("Route {cidr} not found in Route Table {table}")),
        Some(i) if !routes[i].movable() => Err(format!(
            "Route {cidr} in Route Table {table} does not point at a router and cannot be moved"
        )),
        Some(i) => match &routes[i].pinned {
            Some(why) => Err(format!(
                "Route {cidr} in Route Table {table} is not moved: {why}"
            )),
            None => Ok(Targets {
                found: vec![i],
                left: Vec::new(),
            }),
        },
    }
}

/// Why next hop `own` cannot carry `destination` (`next hop 10.0.1.20 is IPv4` for an IPv6
/// prefix); `None` when both are of one family, or either is not an address (an ENI id, an
/// Azure service tag), where no family can be told.
fn other_family(destination: &str, own: &str) -> Option<String> {
    let destination_v6 = destination.parse::<Cidr>().ok()?.is_ipv6();
    let own_v6 = own.parse::<std::net::IpAddr>().ok()?.is_ipv6();
    let family = if own_v6 { "IPv6" } else { "IPv4" };
    (destination_v6 != own_v6).then(|| format!("next hop {own} is {family}"))
}

fn check_node(node: &Node, table: &str, routes: &[Route]) -> (Status, String) {
    let own = node.get(next_hop_param(node.provider)).unwrap_or_default();
    match targets(node, table, routes) {
        Err(message) => (Status::Warning, format!("Warning: {message}")),
        Ok(Targets { found, left }) if found.is_empty() && left.is_empty() => (
            Status::Warning,
            format!("Warning: no route in Route Table {table} points at a router"),
        ),
        Ok(Targets { found, left }) => {
            let mismatch = found.iter().find(|&&i| {
                node.route().is_some() && other_family(&routes[i].destination, own).is_some()
            });
            let checked = format!(
                "Route Table {table} checked: {} route(s) to act on",
                found.len()
            );
            match mismatch {
                Some(&i) => (
                    Status::Warning,
                    format!(
                        "Warning: next hop {own} cannot carry Route {} in Route Table {table}",
                        routes[i].destination
                    ),
                ),
                None if left.is_empty() => (Status::Ok, checked),
                None => (
                    Status::Warning,
                    format!("Warning: {checked}; {}", left.join("; ")),
                ),
            }
        }
    }
}
