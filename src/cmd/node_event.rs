//! `node_event -i N|all [-mi MAX] -e peerFail|revert|verify`: runs an event and prints one line
//! per node, e.g. `200: node 3 peerFail: 10.99.0.0/16 in t1 now via 10.0.1.20 (was 10.0.1.10), 4 ms`.

use std::process::ExitCode;

use super::{Applied, State};
use crate::cli::{self, Args, CliError};
use crate::event::EventKind;
use crate::event_mgr;
use crate::node::{InvalidValue, NodeIndex};
use crate::paths::HaDir;
use crate::protocol::{Command, Target};

pub const HELP: &str = "usage: node_event -i <index>|all [-mi <max index>] -e <event>\n\
Runs an event on one node, a range of nodes (-i N -mi MAX) or all nodes.\n  \
-i <value>     index           an integer in range <1-1023>, or all (required)\n  \
-mi <value>    maxIndex        an integer in range <1-1023>, at least -i: acts on nodes -i..=-mi\n  \
-e <value>     event           peerFail, revert or verify (required)\n\
peerFail points the node's route(s) at this router; revert does the same for primary nodes;\n\
verify reads each route and writes it back unchanged. peerFail cannot be sent to all nodes.\n";

pub fn parse(argv: &[String]) -> Result<Command, CliError> {
    let args = Args::parse(argv, "node_event", |f| {
        matches!(f, "-i" | "-mi" | "-e").then_some(true)
    })?;
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
    Ok(Command::NodeEvent { target, max, event })
}

pub fn apply(
    state: &mut State,
    target: Target,
    max: Option<NodeIndex>,
    event: EventKind,
) -> Applied {
    match event_mgr::plan(state, target, max, event) {
        Ok(plan) => Applied::Event(plan),
        Err(response) => Applied::Reply(response),
    }
}

pub fn main() -> ExitCode {
    let dir = HaDir::from_env();
    match parse(&cli::argv()) {
        Ok(command) => cli::send_and_print(&dir, command, |r| r.text.clone()),
        Err(e) => cli::reject(e, HELP),
    }
}
