//! The in-place planner every provider that edits routes shares (AWS, Azure, file): read the
//! table once, plan each node against it, write only what differs, and answer one
//! [`NodeOutcome`] per node; a dry run plans the same and asks [`RouteTable::probe_write`]
//! instead of writing; a check plans nothing and says what the node would act on.
//!
//! ```text
//! cloud::run(work) ─► provider::run ─► run_table(open(...)) ─► apply(table, work, log)
//!                                  read ─► plan_node × nodes ─► write_all | probe_write | check_node
//! ```
//!
//! GCP routes cannot be edited in place, so that provider plans its own events
//! ([`super::gcp`]); what its dry run says is worded here ([`would_go`], [`no_write_needed`]).

use std::time::Instant;

use super::{CloudError, Permission, Route, RouteTable, RouteWrite};
use crate::event::EventKind;
use crate::event_log::EventLog;
use crate::node::{Cidr, Node, Param, Provider};
use crate::protocol::Status;
use crate::work::{Action, NodeOutcome, Work};

/// The parameter that holds a node's own next hop, for providers that move routes.
pub fn next_hop_param(provider: Provider) -> Param {
    match provider {
        Provider::Aws => Param::EniId,
        Provider::Gcp => Param::NextHopIp,
        Provider::Azure | Provider::File => Param::NextHop,
    }
}

/// The node a table's work opens the table with: the first of the group (they share the table).
pub fn first_node(work: &Work) -> Result<&Node, CloudError> {
    work.nodes
        .first()
        .ok_or_else(|| CloudError::Local("no node to act on".into()))
}

/// A parameter the provider cannot act without, or the error naming the flag that sets it:
/// `node 3 has no routeTableName (-t): set it with set_params`.
pub fn required(node: &Node, param: Param) -> Result<&str, CloudError> {
    node.get(param).ok_or_else(|| lacking(node, &[param]))
}

/// Every parameter the node's provider needs is set ([`Node::missing`]), or the error naming
/// all that are not, as [`required`] words one.
pub fn all_required(node: &Node) -> Result<(), CloudError> {
    let missing = node.missing();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(lacking(node, &missing))
    }
}

fn lacking(node: &Node, params: &[Param]) -> CloudError {
    let named: Vec<String> = params
        .iter()
        .map(|p| format!("{} ({})", p.key(), p.flag()))
        .collect();
    let them = if params.len() == 1 { "it" } else { "them" };
    CloudError::Local(format!(
        "node {} has no {}: set {them} with set_params",
        node.index,
        named.join(", ")
    ))
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
        Err(e) => return unread(work, &name, &e, log, started),
    };
    let read_ms = started.elapsed().as_millis();
    for node in &work.nodes {
        log_table(log, node, &name, &routes, read_ms);
    }
    let (kind, dry_run) = match work.action {
        Action::Event(kind) => (kind, false),
        Action::DryRun(kind) => (kind, true),
        Action::Check => return check_all(work, &name, &routes, started),
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

/// Every node's outcome when the table could not be read: a check warns, an event fails.
fn unread(
    work: &Work,
    name: &str,
    e: &CloudError,
    log: &mut EventLog,
    started: Instant,
) -> Vec<NodeOutcome> {
    match (work.action, e) {
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
        _ => fail_all(work, e, log),
    }
}

/// A check's outcome for every node ([`check_node`]): what it would act on; writes nothing.
fn check_all(work: &Work, name: &str, routes: &[Route], started: Instant) -> Vec<NodeOutcome> {
    work.nodes
        .iter()
        .map(|node| {
            let (outcome, message) = check_node(node, name, routes);
            NodeOutcome::new(node.index.get(), outcome, message, started)
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
                would_go(&format!("{dest} in {name}"), &w.target, &w.was)
            }
        })
        .collect();
    parts.extend(plan.not_written(""));
    let plan_text = parts.join("; ");
    let (status, message) = match permission {
        Some(permission) if !plan.writes.is_empty() => permission.outcome(&plan_text),
        _ if plan_text.is_empty() => (
            Status::Ok,
            no_write_needed(&format!("no route in {name} points at a router")),
        ),
        _ => (Status::Ok, no_write_needed(&plan_text)),
    };
    let status = if plan.left.is_empty() {
        status
    } else {
        status.max(Status::Warning)
    };
    log_dry_run(log, index, &message);
    NodeOutcome::new(index, status, message, started)
}

/// A dry run's planned write: `10.99.0.0/16 in t1 would go via 10.0.1.20 (now 10.0.1.10)`;
/// `place` is the route and where it is (`10.99.0.0/16 in vpc vpc-1` on GCP).
pub fn would_go(place: &str, target: &str, now: &str) -> String {
    format!("{place} would go via {target} (now {now})")
}

/// A dry run's message for a node whose event would write nothing: `plan` and `, no write needed`.
pub fn no_write_needed(plan: &str) -> String {
    format!("{plan}, no write needed")
}

/// The node's event log line for a dry run's message.
pub fn log_dry_run(log: &mut EventLog, index: u16, message: &str) {
    log.line(index, &format!("Dry run: {message}"));
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
