//! `node_event … --dry-run` on GCP (`Action::DryRun`): the event's reads and plan, no write, and
//! the plan's write proven permitted with Cloud Resource Manager's testIamPermissions, asked at
//! most once per project and VPC. Against the loopback fake, which counts writes.

use crate::util;

use csr_ha::event::EventKind;
use csr_ha::protocol::Status;
use csr_ha::work::{Action, NodeOutcome};
use util::gcp_fake::GcpFake;
use util::gcp_run::{config, event_logs, node, router_a, run, seeded, started, PROJECT, VPC};

fn dry_run(
    fake: &GcpFake,
    dir: &std::path::Path,
    kind: EventKind,
    nodes: Vec<csr_ha::node::Node>,
) -> Vec<NodeOutcome> {
    run(&config(fake), dir, Action::DryRun(kind), nodes)
}

/// A dry run of `kind` on router A's node in `mode`.
fn dry(fake: &GcpFake, dir: &std::path::Path, kind: EventKind, mode: &str) -> NodeOutcome {
    dry_run(fake, dir, kind, vec![router_a(mode)]).remove(0)
}

fn probes(fake: &GcpFake) -> usize {
    fake.requests_with(":testIamPermissions").len()
}

const FAILOVER: &str =
    "10.99.0.0/16 in vpc vpc-1 would go via 10.0.1.20 (now 10.0.1.10), deleting peer route route-b";

#[test]
fn a_permitted_failover_is_planned_and_nothing_is_written() {
    let (fake, dir) = seeded();
    let out = dry(&fake, dir.path(), EventKind::PeerFail, "secondary");
    util::assert_outcome(&out, Status::Ok);
    assert_eq!(out.message, format!("{FAILOVER}; write permitted"));
    assert_eq!(fake.state().writes, 0);
    assert!(fake.requests_with("DELETE").is_empty());
    assert!(fake.route(PROJECT, "route-b").is_some());
    assert_eq!(probes(&fake), 1);
    assert!(
        event_logs(dir.path()).is_empty(),
        "a dry run leaves no event log"
    );
}

#[test]
fn a_missing_permission_is_named_with_the_project() {
    let (fake, dir) = seeded();
    fake.state().granted = vec![
        "compute.routes.create".into(),
        "compute.networks.updatePolicy".into(),
    ];
    let out = dry(&fake, dir.path(), EventKind::PeerFail, "secondary");
    util::assert_outcome(&out, Status::Failed);
    assert_eq!(
        out.message,
        format!("{FAILOVER}; not permitted: compute.routes.delete in project proj-1 (testIamPermissions)")
    );
    // The same grants permit a revert's insert.
    fake.state().routes.remove(&format!("{PROJECT}/route-a"));
    let out = dry(&fake, dir.path(), EventKind::Revert, "secondary");
    util::assert_outcome(&out, Status::Ok);
    assert_eq!(
        out.message,
        "10.99.0.0/16 in vpc vpc-1 would go via 10.0.1.20 (now route route-a missing), re-inserting it at priority 100; write permitted"
    );
    assert_eq!(fake.state().writes, 0);
}

#[test]
fn a_disabled_resource_manager_leaves_the_write_not_proven() {
    let (fake, dir) = seeded();
    fake.state().resource_manager_disabled = true;
    let out = dry(&fake, dir.path(), EventKind::Verify, "secondary");
    util::assert_outcome(&out, Status::Warning);
    assert_eq!(
        out.message,
        "probe route csr-ha-verify-route (10.99.0.0/16 via 10.0.1.20, priority 65535) would be inserted and deleted in vpc vpc-1; \
         write permission not proven: testIamPermissions on project proj-1: GCP 403 PERMISSION_DENIED: \
         Cloud Resource Manager API has not been used in project proj-1 before or it is disabled. Enable it, then retry."
    );
    assert_eq!(fake.state().writes, 0);
}

#[test]
fn a_node_needing_no_write_is_not_probed() {
    let (fake, dir) = seeded();
    let outs = [dry(&fake, dir.path(), EventKind::Revert, "primary")];
    util::assert_outcome(&outs[0], Status::Ok);
    assert_eq!(
        outs[0].message,
        "10.99.0.0/16 in vpc vpc-1 already via 10.0.1.20 (route route-a present), no write needed"
    );
    let outs = [dry(&fake, dir.path(), EventKind::PeerFail, "primary")];
    assert_eq!(
        outs[0].message,
        "primary node: route route-a (priority 100) already wins on priority, peer route route-b left in place, no write needed"
    );
    fake.state().routes.remove(&format!("{PROJECT}/route-b"));
    let outs = [dry(&fake, dir.path(), EventKind::PeerFail, "secondary")];
    assert_eq!(
        outs[0].message,
        "peer route route-b not in project proj-1; 10.99.0.0/16 in vpc vpc-1 already via 10.0.1.20, no write needed"
    );
    assert_eq!(probes(&fake), 0);
    assert_eq!(fake.state().writes, 0);
}

#[test]
fn nodes_sharing_a_project_and_vpc_are_probed_once() {
    let (fake, dir) = started();
    let nodes: Vec<_> = (0..3u16)
        .map(|i| {
            let own = format!("route-a{i}");
            let dest = format!("10.9{i}.0.0/16");
            node(
                3 + i,
                "secondary",
                &own,
                "route-b",
                "10.0.1.20",
                "100",
                &dest,
            )
        })
        .collect();
    let outs = dry_run(&fake, dir.path(), EventKind::Revert, nodes);
    for out in &outs {
        util::assert_outcome(out, Status::Ok);
        util::assert_ends(out, "; write permitted");
    }
    assert_eq!(probes(&fake), 1);
    assert_eq!(fake.state().writes, 0);
    assert!(fake.state().routes.is_empty());
}

#[test]
fn a_failover_that_would_leave_nothing_carrying_the_route_warns() {
    let fake = GcpFake::start();
    fake.put_route(PROJECT, VPC, "route-b", "10.99.0.0/16", "10.0.1.10", 200);
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dry(&fake, dir.path(), EventKind::PeerFail, "secondary");
    util::assert_outcome(&out, Status::Warning);
    assert_eq!(
        out.message,
        format!("{FAILOVER}; but this router's route route-a is not in project proj-1, so nothing carries 10.99.0.0/16: run revert on this node to re-insert it; write permitted")
    );
    assert_eq!(fake.state().writes, 0);
}
