//! `clear_params -i N <flags to remove, e.g. -r -m>`: removes parameters from a node.

use std::process::ExitCode;

use super::run;
use super::{describe_params, Applied, State};
use crate::cli::{self, Args, CliError};
use crate::node::{NodeIndex, Param, Provider};
use crate::protocol::{Command, Response};

pub fn help(provider: Provider) -> String {
    let about =
        "Removes the named parameters from node <index>; the flags take no value, e.g. -r -m.";
    cli::node_help("clear_params", provider, about, false)
}

pub fn parse(argv: &[String], provider: Provider) -> Result<Command, CliError> {
    let (index, params) = Args::param_switches(argv, "clear_params", provider)?;
    if params.is_empty() {
        return Err(CliError::Usage(
            "clear_params: name at least one parameter flag to clear, e.g. -r; see clear_params -h"
                .into(),
        ));
    }
    Ok(Command::ClearParams { index, params })
}

pub fn apply(state: &mut State, index: NodeIndex, params: Vec<Param>) -> Applied {
    let Some(existing) = state.db.get(index) else {
        return Applied::Reply(Response::bad(format!(
            "Node with index {index} does not exist"
        )));
    };
    let mut node = existing.clone();
    if let Some(p) = params.iter().find(|p| !node.provider.params().contains(p)) {
        return Applied::Reply(Response::bad(format!(
            "{} ({}) is not a parameter of {} node {index}",
            p.flag(),
            p.key(),
            node.provider
        )));
    }
    for p in &params {
        node.remove(*p);
    }
    if node.provider == Provider::Azure && !node.has(Param::AppId) {
        // Without an app id the tenant and key are meaningless; keep the secret nowhere.
        if params.contains(&Param::AppId) {
            node.remove(Param::TenantId);
            node.remove(Param::AppKey);
        }
    }
    let headline = format!(
        "Cleared parameters on node with index {index}: {}",
        describe_params(&params)
    );
    super::store_and_reply(state, node, headline)
}

pub fn main() -> ExitCode {
    run::main_for_provider(parse, help)
}
