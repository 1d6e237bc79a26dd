//! `set_params -i N <any flags>`: changes some parameters of an existing node.

use std::process::ExitCode;

use super::run;
use super::{store_and_reply, updated, Applied, State, Validated};
use crate::cli::{self, Args, CliError};
use crate::node::Provider;
use crate::protocol::{Command, Response};

pub fn help(provider: Provider) -> String {
    let about = format!(
        "Sets the given parameters of node <index>, keeping the others. Flags for {provider}:"
    );
    cli::node_help("set_params", provider, &about, true)
}

pub fn parse(argv: &[String], provider: Provider) -> Result<Command, CliError> {
    let request = Args::node_params(argv, "set_params", provider)?;
    if request.params.is_empty() {
        return Err(CliError::Usage(
            "set_params: give at least one parameter flag to set; see set_params -h".into(),
        ));
    }
    Ok(Command::SetParams(request))
}

/// Server half; `request`'s values were validated again by [`super::apply`].
pub fn apply(state: &mut State, request: Validated) -> Applied {
    let index = request.index;
    match updated(state, request) {
        Err(r) => Applied::Reply(r),
        Ok((node, true)) => {
            store_and_reply(state, node, format!("Updated node {index} Successfully"))
        }
        Ok((_, false)) => Applied::Reply(Response::bad(format!(
            "Node with index {index} does not exist; create it with create_node -i {index}"
        ))),
    }
}

pub fn main() -> ExitCode {
    run::main_for_provider(parse, help)
}
