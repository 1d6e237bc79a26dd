//! `node_event -i N|all [-mi MAX] -e peerFail|revert|verify [--dry-run]`: runs an event and
//! prints one line per node, e.g.
//! `200: node 3 peerFail: 10.99.0.0/16 in t1 now via 10.0.1.20 (was 10.0.1.10), 4 ms`.
//!
//! `--dry-run` runs the same selection, grouping, table read and plan, writes nothing, and asks
//! the cloud whether the write would be permitted: `200: node 3 peerFail (dry run): 10.99.0.0/16
//! in t1 would go via 10.0.1.20 (now 10.0.1.10); write permitted`. It changes no route, no node
//! and no `lastEvent`; its line becomes the node's `lastCheck`.

//!
//! The server half decides which nodes the event touches (grouped by route table, one handler
//! each), which it answers without a handler (secondary nodes on revert, incomplete nodes), and
//! how the answer reads once the handlers report.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::SystemTime;

use super::run;
use super::{describe_params, work, Applied, State};
use crate::cli::{self, Args, CliError, Flag, INDEX};
use crate::event::EventKind;
use crate::event_mgr::Answer;
use crate::node::{InvalidValue, LastEvent, Mode, Node, NodeIndex, Provider};
use crate::paths::HaDir;
use crate::protocol::Status;
use crate::protocol::{Command, Line, Response, Target};
use crate::work::{Action, NodeOutcome};

pub const HELP: &str = "usage: node_event -i <index>|all [-mi <max index>] -e <event> [--dry-run]\n\
Runs an event on one node, a range of nodes (-i N -mi MAX) or all nodes.\n  \
-i <value>     index           an integer in range <1-1023>, or all (required)\n  \
-mi <value>    maxIndex        an integer in range <1-1023>, at least -i: acts on nodes -i..=-mi\n  \
-e <value>     event           peerFail, revert or verify (required)\n  \
--dry-run                      read and plan, prove write permission, write nothing\n\
peerFail points the node's route(s) at this router; revert does the same for primary nodes;\n\
verify reads each route and writes it back unchanged. peerFail cannot be sent to all nodes\n\
(except with --dry-run, which writes nothing).\n";

pub fn parse(argv: &[String]) -> Result<Command, CliError> {
    let args = Args::parse(
        argv,
        "node_event",
        &[
            INDEX,
            Flag::value("-mi"),
            Flag::value("-e"),
            Flag::switch("--dry-run"),
        ],
    )?;
    let target = args.target()?;
    let event: EventKind = match args.get("-e") {
        Some(e) => e.parse()?,
        None => {
            return Err(InvalidValue::new("-e", "", "peerFail, revert or verify (required)").into())
        }
    };
    let max = match args.get("-mi") {
        None => None,
        Some(v) => {
            let max: NodeIndex = v.parse().map_err(|_| {
                InvalidValue::new("-mi", v, "an integer in range <1-1023>, at least -i")
            })?;
            match target {
                Target::All => {
                    return Err(CliError::Usage(
                        "-mi needs -i <first index>, not -i all".into(),
                    ))
                }
                Target::One(first) if max < first => {
                    return Err(InvalidValue::new(
                        "-mi",
                        v,
                        &format!("an integer in range <{first}-1023> (at least -i {first})"),
                    )
                    .into())
                }
                Target::One(_) => Some(max),
            }
        }
    };
    Ok(Command::NodeEvent {
        target,
        max,
        event,
        dry_run: args.has("--dry-run"),
    })
}

pub fn apply(
    state: &mut State,
    target: Target,
    max: Option<NodeIndex>,
    event: EventKind,
    dry_run: bool,
) -> Applied {
    let nodes = match select(state, target, max, event, dry_run) {
        Ok(nodes) => nodes,
        Err(response) => return Applied::Reply(response),
    };
    let single = matches!((target, max), (Target::One(_), None));
    let mut decided = Vec::new();
    let mut groups: BTreeMap<String, Vec<Node>> = BTreeMap::new();
    for node in nodes {
        match decide(node, event, single) {
            Some(Some(line)) => decided.push(line),
            Some(None) => {}
            None => groups
                .entry(node.route_table_id())
                .or_default()
                .push(node.clone()),
        }
    }
    if groups.is_empty() && decided.is_empty() {
        return Applied::Reply(Response::ok(format!(
            "No primary nodes configured, {event} event aborted"
        )));
    }
    let action = if dry_run {
        Action::DryRun(event)
    } else {
        Action::Event(event)
    };
    let works = groups
        .into_values()
        .map(|nodes| work(state, action, nodes))
        .collect();
    let started = SystemTime::now();
    Applied::Handlers {
        works,
        reply: Box::new(move |outcomes| answer(action, started, decided, outcomes)),
    }
}

/// The nodes `-i`/`-mi` name; `Err` is the answer when there are none.
fn select(
    state: &State,
    target: Target,
    max: Option<NodeIndex>,
    event: EventKind,
    dry_run: bool,
) -> Result<Vec<&Node>, Response> {
    match (target, max) {
        (Target::One(index), None) => state
            .db
            .get(index)
            .map(|node| vec![node])
            .ok_or_else(|| Response::bad(format!("Node with index {index} not found"))),
        (Target::One(first), Some(last)) if last < first => Err(Response::bad(format!(
            "-mi {last} must be at least -i {first}"
        ))),
        (Target::One(first), Some(last)) => {
            let nodes: Vec<&Node> = state
                .db
                .nodes()
                .filter(|n| n.index >= first && n.index <= last)
                .collect();
            if nodes.is_empty() {
                return Err(Response::bad(format!(
                    "No redundancy nodes found in range {first}-{last}"
                )));
            }
            Ok(nodes)
        }
        // A failover of every node at once is refused; asking what it would do is not.
        (Target::All, _) if event == EventKind::PeerFail && !dry_run => Err(Response::bad(
            "peerFail cannot be sent to all nodes; name the node with -i <index> (or a range with -mi)",
        )),
        (Target::All, _) if state.db.is_empty() => {
            Err(Response::bad("No redundancy nodes found"))
        }
        (Target::All, _) => Ok(state.db.nodes().collect()),
    }
}

/// A node the event skips: `Some(Some(line))` answers it without a handler, `Some(None)` leaves
/// it out silently (a secondary node in a bulk revert), `None` sends it to a handler.
fn decide(node: &Node, event: EventKind, single: bool) -> Option<Option<NodeOutcome>> {
    let index = node.index.get();
    // GCP reverts every node (its own route is re-inserted whatever the mode).
    let skip_secondary = event == EventKind::Revert
        && node.provider != Provider::Gcp
        && node.mode() != Mode::Primary;
    if skip_secondary {
        return Some(single.then(|| NodeOutcome {
            index,
            outcome: Status::Ok,
            message: "secondary node, nothing to do (revert acts on primary nodes)".into(),
            duration_ms: 0,
        }));
    }
    let missing = node.missing();
    if !missing.is_empty() {
        return Some(Some(NodeOutcome {
            index,
            outcome: Status::Failed,
            message: format!(
                "skipped: missing {} needed for {} events",
                describe_params(&missing),
                node.provider
            ),
            duration_ms: 0,
        }));
    }
    None
}

/// One line per node, in index order: `200: node 3 peerFail: …` (`node 3 peerFail (dry run):
/// …`); the worst status overall. Every outcome from a handler is also the node's last event
/// (a dry run's, its last check) and a log line.
fn answer(
    action: Action,
    started: SystemTime,
    decided: Vec<NodeOutcome>,
    outcomes: Vec<NodeOutcome>,
) -> Answer {
    let (event, label) = (action.label(), action.title());
    let time = crate::timestamp::local(started, crate::timestamp::EVENT_TIME);
    let unix = crate::timestamp::unix_secs(started);
    // A dry run's every line is the node's last check, one the server answered itself (a
    // node skipped for a missing parameter) included, so a check that could not run shows as
    // failed; an event's skipped nodes keep their last event, as before.
    let answered_here = match action {
        Action::DryRun(_) => decided.as_slice(),
        _ => &[],
    };
    let records: Vec<(u16, LastEvent)> = answered_here
        .iter()
        .chain(&outcomes)
        .map(|o| {
            let last = LastEvent {
                event: event.to_string(),
                time: time.clone(),
                outcome: Line::status(o.outcome, o.message.clone()).to_string(),
                duration_ms: o.duration_ms,
                unix,
            };
            (o.index, last)
        })
        .collect();
    for o in &outcomes {
        let level = if o.outcome == Status::Failed {
            log::Level::Warn
        } else {
            log::Level::Info
        };
        log::log!(
            level,
            "node {} {label}: {}: {}",
            o.index,
            o.outcome.code(),
            o.message
        );
    }
    let mut lines: Vec<NodeOutcome> = decided.into_iter().chain(outcomes).collect();
    lines.sort_by_key(|o| o.index);
    let lines = lines
        .into_iter()
        .map(|o| {
            Line::status(
                o.outcome,
                format!("node {} {label}: {}", o.index, o.message),
            )
        })
        .collect();
    let (last_events, last_checks) = match action {
        Action::DryRun(_) => (Vec::new(), records),
        _ => (records, Vec::new()),
    };
    Answer {
        response: Response::of(lines),
        last_events,
        last_checks,
    }
}

pub fn main() -> ExitCode {
    let dir = HaDir::from_env();
    match parse(&cli::argv()) {
        Ok(command) => run::send_and_print(&dir, command, Response::render),
        Err(e) => run::reject(e, HELP),
    }
}
