//! `delete_node -i N`: removes a node. A node that does not exist is not an error (as the
//! original documented), so cleanup scripts can run twice.

use std::process::ExitCode;

use super::run;
use super::{Applied, State};
use crate::cli::{self, Args, CliError, INDEX};
use crate::node::NodeIndex;
use crate::paths::HaDir;
use crate::protocol::{Command, Response};

pub const HELP: &str = "usage: delete_node -i <index>\n\
Deletes redundancy node <index>; deleting a node that does not exist succeeds.\n  \
-i <value>     index           an integer in range <1-1023> (required)\n";

pub fn parse(argv: &[String]) -> Result<Command, CliError> {
    let args = Args::parse(argv, "delete_node", &[INDEX])?;
    Ok(Command::DeleteNode {
        index: args.index()?,
    })
}

pub fn apply(state: &mut State, index: NodeIndex) -> Applied {
    match state.db.remove(index) {
        Ok(true) => {
            state.forget_records(index.get());
            log::info!("node {index}: deleted");
            Applied::Reply(Response::ok(format!("Successfully deleted node {index}")))
        }
        Ok(false) => Applied::Reply(Response::ok(format!(
            "Node {index} does not exist, nothing to delete"
        ))),
        Err(e) => Applied::Reply(Response::bad(format!("node {index} not deleted: {e}"))),
    }
}

pub fn main() -> ExitCode {
    let dir = HaDir::from_env();
    match parse(&cli::argv()) {
        Ok(command) => run::send_and_print(&dir, command, Response::render),
        Err(e) => run::reject(e, HELP),
    }
}
