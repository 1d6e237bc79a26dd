//! `create_node -i <1..1023> [-m primary|secondary] <cloud flags>`: stores a new node.

use std::process::ExitCode;

use super::{store_and_reply, validate_params, Applied, State};
use crate::cli::{self, Args, CliError};
use crate::node::{Node, NodeIndex, Param, Provider};
use crate::protocol::{Command, Response};

pub fn help(provider: Provider) -> String {
    format!(
        "usage: create_node -i <index> <flags>   (cloud: {provider})\n\
         Creates redundancy node <index>. Flags for {provider}:\n  \
         -i <value>     index           an integer in range <1-1023> (required)\n{}\
         The cloud comes from CSR_HA_CLOUD, else $CSR_HA_DIR/cloud, else file.\n",
        cli::param_help(provider, true)
    )
}

/// Flags → `CreateNode`, every value validated.
pub fn parse(argv: &[String], provider: Provider) -> Result<Command, CliError> {
    let (index, params) = Args::node_params(argv, "create_node", provider)?;
    if provider == Provider::Azure {
        let given = |p: Param| params.iter().any(|(q, _)| *q == p);
        if given(Param::AppId) && !(given(Param::TenantId) && given(Param::AppKey)) {
            return Err(CliError::Usage(
                "-a <app id> needs -d <tenant id> and -k <app key>".into(),
            ));
        }
    }
    Ok(Command::CreateNode {
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
    if state.db.get(index).is_some() {
        return Applied::Reply(Response::bad(format!(
            "400: Node with index {index} already exists; change it with set_params -i {index} or remove it with delete_node -i {index}"
        )));
    }
    let mut node = Node::new(index, provider);
    node.params.extend(params);
    store_and_reply(
        state,
        node,
        format!("Successfully created new node with index {index}"),
    )
}

pub fn main() -> ExitCode {
    cli::main_for_provider(parse, help)
}
