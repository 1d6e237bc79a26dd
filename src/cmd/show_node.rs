//! `show_node -i N|all [--json]`: prints nodes as the original did (key padded to 15 columns,
//! then the value), with each node's last event; `--json` for scripts. Secrets are masked by
//! the server before they leave it.

use std::process::ExitCode;

use serde_json::{json, Value as Json};

use super::run;
use super::State;
use crate::cli::{self, Args, CliError, Flag, INDEX};
use crate::node::{LastEvent, Node, Param, Value};
use crate::paths::HaDir;
use crate::protocol::{Command, NodeView, Response, Target};

pub const HELP: &str = "usage: show_node -i <index>|all [--json]\n\
Prints the parameters, the last event (lastEvent) and the last dry run (lastCheck) of one node\n\
or of all nodes.\n  \
-i <value>     index           an integer in range <1-1023>, or all (required)\n  \
--json                         print JSON for scripts instead of text\n";

pub fn parse(argv: &[String]) -> Result<(Command, bool), CliError> {
    let args = Args::parse(argv, "show_node", &[INDEX, Flag::switch("--json")])?;
    Ok((
        Command::ShowNode {
            target: args.target()?,
        },
        args.has("--json"),
    ))
}

/// A node as it leaves the server: secrets masked, with its last event and last dry run.
pub fn view(state: &State, node: &Node) -> NodeView {
    let mut node = node.clone();
    let secrets: Vec<(Param, Value)> = node
        .params()
        .filter(|(p, _)| p.is_secret())
        .map(|(p, v)| (p, v.masked()))
        .collect();
    for (param, masked) in secrets {
        node.set(param, masked);
    }
    let index = node.index.get();
    NodeView {
        last_event: state.last_events.get(&index).cloned(),
        last_check: state.last_checks.get(&index).cloned(),
        credential: None,
        node,
    }
}

pub fn apply(state: &State, target: Target) -> Response {
    let view = |node: &Node| view(state, node);
    let nodes: Vec<NodeView> = match target {
        Target::One(index) => match state.db.get(index) {
            Some(node) => vec![view(node)],
            None => return Response::bad(format!("Node with index {index} not found")),
        },
        Target::All => state.db.nodes().map(view).collect(),
    };
    if nodes.is_empty() {
        return Response::bad("No redundancy nodes found");
    }
    let text = match target {
        Target::One(_) => "Retrieved the node successfully".to_string(),
        Target::All => format!("Retrieved {} node(s) successfully", nodes.len()),
    };
    Response {
        nodes,
        ..Response::ok(text)
    }
}

/// The text form: the status line, then one block per node.
pub fn render_text(response: &Response) -> String {
    let mut out = format!("{}\n", response.render());
    for (i, view) in response.nodes.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&view.node.describe());
        if let Some(last) = &view.last_event {
            out.push_str(&format!(
                "{:15}{} at {}, took {} ms: {}\n",
                "lastEvent", last.event, last.time, last.duration_ms, last.outcome
            ));
        }
        if let Some(last) = &view.last_check {
            out.push_str(&format!(
                "{:15}{} dry run at {}, took {} ms: {}\n",
                "lastCheck", last.event, last.time, last.duration_ms, last.outcome
            ));
        }
    }
    out
}

/// The `--json` form: `{"code":200,"message":"...","nodes":[…]}`, each node the object
/// `ha_api -c status --json` shows too ([`node_json`]).
pub fn render_json(response: &Response) -> String {
    let now = crate::timestamp::unix_secs(std::time::SystemTime::now());
    let nodes: Vec<serde_json::Value> = response
        .nodes
        .iter()
        .map(|view| node_json(view, now))
        .collect();
    let doc = serde_json::json!({"code": response.status.code(), "message": response.render(), "nodes": nodes});
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

/// A last event or check as JSON: `null` or `{"event","time","ok","text","durationMs",
/// "ageSeconds"}`.
pub fn last_json(last: Option<&LastEvent>, now_unix: u64) -> Json {
    match last {
        None => Json::Null,
        Some(last) => json!({
            "event": last.event,
            "time": last.time,
            "ok": last.ok(),
            "text": last.outcome,
            "durationMs": last.duration_ms,
            "ageSeconds": last.age_secs_at(now_unix),
        }),
    }
}

/// The node object of `show_node --json` and `ha_api -c status --json`: its parameters (secrets
/// masked), `mode`, `table`, `route`, `lastEvent` and `lastCheck`.
pub fn node_json(view: &NodeView, now_unix: u64) -> Json {
    let node = &view.node;
    let mut value = node.to_json();
    if let Some(map) = value.as_object_mut() {
        map.insert("mode".into(), node.mode().to_string().into());
        map.insert("table".into(), node.route_table_id().into());
        map.insert(
            "route".into(),
            node.route().map_or(Json::Null, |r| r.to_string().into()),
        );
        map.insert(
            "lastEvent".into(),
            last_json(view.last_event.as_ref(), now_unix),
        );
        map.insert(
            "lastCheck".into(),
            last_json(view.last_check.as_ref(), now_unix),
        );
        if let Some(credential) = &view.credential {
            map.insert("credential".into(), credential.as_str().into());
        }
    }
    value
}

pub fn main() -> ExitCode {
    let dir = HaDir::from_env();
    match parse(&cli::argv()) {
        Ok((command, json)) => run::send_and_print(&dir, command, |r| {
            if json {
                render_json(r)
            } else {
                render_text(r)
            }
        }),
        Err(e) => run::reject(e, HELP),
    }
}
