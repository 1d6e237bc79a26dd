//! `node_event … --dry-run` on GCP: the same reads and plan as the event ([`super::plan_peer_fail`],
//! [`super::plan_revert`]), no write, and the write the plan needs proven permitted without
//! writing it.
//!
//! ```text
//! peerFail  secondary, peer route present: 10.99.0.0/16 in vpc vpc-1 would go via 10.0.1.20
//!           (now 10.0.1.10), deleting peer route route-b; write permitted
//!           peer route absent / primary: … already via 10.0.1.20, no write needed
//! revert    route missing: 10.99.0.0/16 in vpc vpc-1 would go via 10.0.1.20 (now route route-a
//!           missing), re-inserting it at priority 100; write permitted
//! verify    probe route csr-ha-verify-route (…, priority 65535) would be inserted and deleted
//!           in vpc vpc-1; write permitted
//! ```
//!
//! The proof is Cloud Resource Manager's `projects.testIamPermissions`, asked once per project
//! and VPC per handler run for all three permissions the provider's writes need; each node is
//! then judged on what its own plan needs (a delete `compute.routes.delete`; an insert
//! `compute.routes.create` and `compute.networks.updatePolicy`). Where the API cannot answer
//! (disabled, a token without a `cloud-platform` scope, unreachable), the write is "not proven":
//! a warning, not a failure. A node whose plan needs no write is not probed.

use std::collections::BTreeMap;
use std::time::Instant;

use super::client::ComputeClient;
use super::{
    failed, foreign_probe, is_own_probe, own_route, peer_absent_note, plan_peer_fail, plan_revert,
    primary_note, Done, PeerFailPlan, RevertPlan, Spec, PROBE_PRIORITY, PROBE_ROUTE,
};
use crate::cloud::{CloudError, Permission};
use crate::event::EventKind;
use crate::event_log::EventLog;
use crate::protocol::Status;

/// What is asked of testIamPermissions: every permission the provider's writes need.
pub const ASKED: [&str; 3] = [
    "compute.routes.create",
    "compute.routes.delete",
    "compute.networks.updatePolicy",
];
/// What deleting a route needs.
const DELETE: &[&str] = &["compute.routes.delete"];
/// What inserting a route into a network needs.
const INSERT: &[&str] = &["compute.routes.create", "compute.networks.updatePolicy"];

/// The permissions granted per project and VPC, asked at most once per handler run.
#[derive(Default)]
pub struct Grants {
    by_table: BTreeMap<(String, String), Result<Vec<String>, CloudError>>,
}

impl Grants {
    /// Whether this node's credentials hold every one of `needed` in the node's project.
    fn permission(
        &mut self,
        api: &mut ComputeClient,
        spec: &Spec,
        needed: &[&str],
        log: &mut EventLog,
    ) -> Permission {
        let key = (spec.project.to_string(), spec.vpc.to_string());
        let granted = self.by_table.entry(key).or_insert_with(|| {
            let started = Instant::now();
            let answer = api.granted(spec.project, &ASKED);
            let said = match &answer {
                Ok(granted) => format!("granted [{}]", granted.join(", ")),
                Err(e) => format!("no answer: {e}"),
            };
            log.line(
                spec.index,
                &format!(
                    "testIamPermissions on project {}: {said} ({} ms)",
                    spec.project,
                    started.elapsed().as_millis()
                ),
            );
            answer
        });
        match granted {
            Ok(granted) => {
                let missing: Vec<&str> = needed
                    .iter()
                    .copied()
                    .filter(|p| !granted.iter().any(|g| g == p))
                    .collect();
                if missing.is_empty() {
                    Permission::Permitted
                } else {
                    Permission::Denied(format!(
                        "{} in project {} (testIamPermissions)",
                        missing.join(", "),
                        spec.project
                    ))
                }
            }
            Err(CloudError::Transport(why)) => Permission::NotProven(why.clone()),
            Err(e) => Permission::NotProven(format!(
                "testIamPermissions on project {}: {e}",
                spec.project
            )),
        }
    }
}

/// A dry run of `kind` on one node: what the event would do, and whether it may.
pub fn plan(
    kind: EventKind,
    api: &mut ComputeClient,
    grants: &mut Grants,
    spec: &Spec,
    log: &mut EventLog,
) -> Done {
    let (status, message) = match kind {
        EventKind::PeerFail => peer_fail(api, grants, spec, log),
        EventKind::Revert => revert(api, grants, spec, log),
        EventKind::Verify => verify(api, grants, spec, log),
    };
    log.line(spec.index, &format!("Dry run: {message}"));
    (status, message, false)
}

/// `10.99.0.0/16 in vpc vpc-1`
fn place(spec: &Spec) -> String {
    format!("{} in vpc {}", spec.destination, spec.vpc)
}

fn peer_fail(
    api: &mut ComputeClient,
    grants: &mut Grants,
    spec: &Spec,
    log: &mut EventLog,
) -> (Status, String) {
    let peer = match plan_peer_fail(api, spec, log) {
        Err(why) => return undone(failed(why)),
        Ok(PeerFailPlan::Primary) => {
            return (
                Status::Ok,
                format!("{}, no write needed", primary_note(spec)),
            )
        }
        Ok(PeerFailPlan::PeerAbsent) => {
            let absent = peer_absent_note(spec);
            return match own_route(api, spec, log) {
                Ok(hop) => (
                    Status::Ok,
                    format!(
                        "{absent}; {} already via {hop}, no write needed",
                        place(spec)
                    ),
                ),
                Err(wrong) => (
                    Status::Warning,
                    format!("Warning: {absent}; but {wrong}, no write needed"),
                ),
            };
        }
        Ok(PeerFailPlan::Delete(peer)) => peer,
    };
    let plan = format!(
        "{} would go via {} (now {}), deleting peer route {}",
        place(spec),
        spec.next_hop,
        peer.hop(),
        spec.peer
    );
    // The event reads this router's route after the delete; a dry run reads it now, so that a
    // failover that would leave nothing carrying the traffic is known before it is needed.
    let (plan, own_ok) = match own_route(api, spec, log) {
        Ok(_) => (plan, true),
        Err(wrong) => (format!("{plan}; but {wrong}"), false),
    };
    let (status, message) = grants.permission(api, spec, DELETE, log).outcome(&plan);
    let status = if own_ok {
        status
    } else {
        status.max(Status::Warning)
    };
    (status, message)
}

fn revert(
    api: &mut ComputeClient,
    grants: &mut Grants,
    spec: &Spec,
    log: &mut EventLog,
) -> (Status, String) {
    match plan_revert(api, spec, log) {
        Err(why) => undone(failed(why)),
        Ok(RevertPlan::Present) => (
            Status::Ok,
            format!(
                "{} already via {} (route {} present), no write needed",
                place(spec),
                spec.next_hop,
                spec.own
            ),
        ),
        Ok(RevertPlan::Differs(warning)) => (Status::Warning, warning),
        Ok(RevertPlan::Insert) => {
            let plan = format!(
                "{} would go via {} (now route {} missing), re-inserting it at priority {}",
                place(spec),
                spec.next_hop,
                spec.own,
                spec.priority
            );
            grants.permission(api, spec, INSERT, log).outcome(&plan)
        }
    }
}

fn verify(
    api: &mut ComputeClient,
    grants: &mut Grants,
    spec: &Spec,
    log: &mut EventLog,
) -> (Status, String) {
    let stale = match api.get_route(spec.project, PROBE_ROUTE, log, spec.index) {
        Err(e) => return undone(failed(e.to_string())),
        Ok(stale) => stale,
    };
    let cleanup = match stale {
        Some(route) if !is_own_probe(&route, spec) => return undone(failed(foreign_probe(spec))),
        Some(_) => " (after deleting the probe an earlier verify left)",
        None => "",
    };
    let plan = format!(
        "probe route {PROBE_ROUTE} ({}) would be inserted and deleted in vpc {}{cleanup}",
        spec.describe(PROBE_PRIORITY),
        spec.vpc
    );
    grants.permission(api, spec, &ASKED, log).outcome(&plan)
}

/// A [`Done`] that wrote nothing, as a dry run's (status, message).
fn undone((status, message, _): Done) -> (Status, String) {
    (status, message)
}
