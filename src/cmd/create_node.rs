//! `create_node -i <1..1023> [-m primary|secondary] <cloud flags>`: stores a node, or, when the
//! index exists, updates it with the given flags (as the original did: provisioning scripts
//! re-run `create_node` on every boot and expect success).

use std::process::ExitCode;

use super::run;
use super::{store_and_reply, updated, Applied, State, Validated};
use crate::cli::{self, Args, CliError};
use crate::node::{Node, Param, Provider};
use crate::protocol::{Command, Line, Response, Status};

pub fn help(provider: Provider) -> String {
    let about = format!(
        "Creates redundancy node <index>, or updates it with the given flags if it exists.\n\
         Required for {provider}: -i {}. Flags for {provider}:",
        flags(&provider.create_required())
    );
    cli::node_help("create_node", provider, &about, true)
}

/// `-t -n`.
fn flags(params: &[Param]) -> String {
    params
        .iter()
        .map(|p| p.flag())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The flags the original required for `provider` that are not among `given`: the reason to
/// refuse.
fn missing_required(provider: Provider, given: &[Param]) -> Option<String> {
    let missing: Vec<Param> = provider
        .create_required()
        .into_iter()
        .filter(|p| !given.contains(p))
        .collect();
    (!missing.is_empty()).then(|| {
        format!(
            "create_node: the following arguments are required for {provider}: {}; see create_node -h",
            super::describe_params(&missing)
        )
    })
}

/// Flags → `CreateNode`, every value validated and the cloud's required flags present.
pub fn parse(argv: &[String], provider: Provider) -> Result<Command, CliError> {
    let request = Args::node_params(argv, "create_node", provider)?;
    let given: Vec<Param> = request.params.iter().map(|(p, _)| *p).collect();
    if let Some(reason) = missing_required(provider, &given) {
        return Err(CliError::Usage(reason));
    }
    if provider == Provider::Azure {
        let given = |p: Param| request.params.iter().any(|(q, _)| *q == p);
        if given(Param::AppId) && !(given(Param::TenantId) && given(Param::AppKey)) {
            return Err(CliError::Usage(
                "-a <app id> needs -d <tenant id> and -k <app key>".into(),
            ));
        }
    }
    Ok(Command::CreateNode(request))
}

/// Server half; `request`'s values were validated again by [`super::apply`].
pub fn apply(state: &mut State, request: Validated) -> Applied {
    // Checked again here: the FIFO is open to any local writer, not only our client.
    let given: Vec<Param> = request.values.iter().map(|(p, _)| *p).collect();
    if let Some(reason) = missing_required(request.provider, &given) {
        return Applied::Reply(Response::bad(reason));
    }
    let index = request.index;
    let (node, headline) = match updated(state, request) {
        Err(r) => return Applied::Reply(r),
        Ok((node, true)) => (node, format!("Updated node {index} Successfully")),
        Ok((node, false)) => (
            node,
            format!("Successfully created new node with index {index}"),
        ),
    };
    let azure_missing = azure_warnings(&node);
    match store_and_reply(state, node, headline) {
        Applied::Reply(mut r) if r.status == Status::Warning => {
            r.lines.splice(0..0, azure_missing);
            Applied::Reply(r)
        }
        other => other,
    }
}

/// The original's warnings for an Azure node created without `-s` or `-g`, which scripts and
/// operators know; the node is stored and completed later with `set_params`.
fn azure_warnings(node: &Node) -> Vec<Line> {
    if node.provider != Provider::Azure {
        return Vec::new();
    }
    [Param::SubscriptionId, Param::ResourceGroup]
        .into_iter()
        .filter(|p| node.get(*p).is_none())
        .map(|p| {
            Line::status(
                Status::Warning,
                format!(
                    "{key} is not found in input parameters. Please configure valid {key} using set_params.py",
                    key = p.key()
                ),
            )
        })
        .collect()
}

pub fn main() -> ExitCode {
    run::main_for_provider(parse, help)
}
