//! `set_params -i N <any flags>`: changes some parameters of an existing node.

use std::process::ExitCode;

use super::{provider_mismatch, store_and_reply, validate_params, Applied, State};
use crate::cli::{self, Args, CliError};
use crate::node::{NodeIndex, Param, Provider};
use crate::protocol::{Command, Response};

pub fn help(provider: Provider) -> String {
    format!(
        "usage: set_params -i <index> <flags>   (cloud: {provider})\n\
         Sets the given parameters of node <index>, keeping the others. Flags for {provider}:\n  \
         -i <value>     index           an integer in range <1-1023> (required)\n{}",
        cli::param_help(provider, true)
    )
}

pub fn parse(argv: &[String], provider: Provider) -> Result<Command, CliError> {
    let (index, params) = Args::node_params(argv, "set_params", provider)?;
    if params.is_empty() {
        return Err(CliError::Usage(
            "set_params: give at least one parameter flag to set; see set_params -h".into(),
        ));
    }
    Ok(Command::SetParams {
        index,
        provider,
        params,
    })
}

pub fn apply(
    state: &mut State,
    index: NodeIndex,
    provider: Provider,
    params: Vec<(Param, String)>,
) -> Applied {
    if let Err(r) = validate_params(provider, &params) {
        return Applied::Reply(r);
    }
    let Some(existing) = state.db.get(index) else {
        return Applied::Reply(Response::bad(format!(
            "Node with index {index} does not exist; create it with create_node -i {index}"
        )));
    };
    if let Some(r) = provider_mismatch(existing, provider) {
        return Applied::Reply(r);
    }
    let mut node = existing.clone();
    node.params.extend(params);
    store_and_reply(state, node, format!("Updated node {index} Successfully"))
}

pub fn main() -> ExitCode {
    cli::main_for_provider(parse, help)
}
