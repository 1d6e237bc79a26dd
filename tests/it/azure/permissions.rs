//! A dry run's proof of write permission on Azure, without writing: Permissions - List For
//! Resource on the route table (api-version 2022-04-01), the action the write needs matched
//! against each permission's `actions` and `notActions` as Azure RBAC matches them.

use crate::util;

use std::time::{Duration, Instant};

use csr_ha::cloud::azure;
use csr_ha::cloud::{Permission, Route, RouteTable, RouteWrite};
use csr_ha::event::EventKind;
use csr_ha::node::Node;
use csr_ha::work::Action;
use serde_json::json;
use util::azure_fake::Fake;
use util::azure_run::{config, fake_with_table, node, OURS, PEER};

/// The probe of `node`'s table, called directly as a dry run calls it.
fn probe(fake: &Fake, node: Node) -> Permission {
    let dir = tempfile::tempdir().expect("temp dir");
    let work = util::work(
        Action::DryRun(EventKind::PeerFail),
        csr_ha::node::Provider::Azure,
        dir.path(),
        vec![node],
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut table = azure::open(&work, deadline, config(fake)).expect("opens");
    let write = RouteWrite {
        route: Route {
            destination: "10.99.0.0/16".into(),
            next_hop: Some(PEER.into()),
            id: "to-dc".into(),
            pinned: None,
        },
        next_hop: OURS.into(),
        conditional: false,
    };
    table.probe_write(&[write])
}

fn one_route(index: u16) -> Node {
    node(index, "rt-perm", OURS, Some("10.99.0.0/16"))
}

fn all_routes(index: u16) -> Node {
    node(index, "rt-perm", OURS, None)
}

#[test]
fn the_probe_asks_the_table_permissions_and_writes_nothing() {
    let fake = fake_with_table("rt-perm");
    assert_eq!(probe(&fake, one_route(1)), Permission::Permitted);

    let arm: Vec<_> = fake.seen().into_iter().filter(|s| !s.is_imds()).collect();
    assert_eq!(arm.len(), 1, "one request: {arm:?}");
    assert!(arm[0].is_permissions(), "{}", arm[0].url);
    assert_eq!(arm[0].method, "GET");
    assert!(
        arm[0].url.ends_with("?api-version=2022-04-01"),
        "{}",
        arm[0].url
    );
    assert!(arm[0]
        .path()
        .starts_with(&util::azure_fake::table_id("rt-perm")));
    assert_eq!(arm[0].header("Accept"), Some("application/json"));
}

#[test]
fn a_not_action_denies_the_route_write_but_not_the_table_write() {
    let fake = fake_with_table("rt-perm");
    fake.state().permissions = json!([{
        "actions": ["Microsoft.Network/*"],
        "notActions": ["microsoft.network/routeTables/routes/*"],
    }]);
    assert_eq!(
        probe(&fake, one_route(1)),
        Permission::Denied("Microsoft.Network/routeTables/routes/write on rt-perm".into())
    );
    assert_eq!(probe(&fake, all_routes(2)), Permission::Permitted);
}

#[test]
fn route_rights_alone_do_not_permit_an_all_routes_table_write() {
    let fake = fake_with_table("rt-perm");
    fake.state().permissions = json!([
        {"actions": ["Microsoft.Network/routeTables/read"], "notActions": []},
        {"actions": ["Microsoft.Network/routeTables/routes/*"], "notActions": []},
    ]);
    assert_eq!(probe(&fake, one_route(1)), Permission::Permitted);
    assert_eq!(
        probe(&fake, all_routes(2)),
        Permission::Denied("Microsoft.Network/routeTables/write on rt-perm".into())
    );
}

#[test]
fn a_permission_list_azure_will_not_give_proves_nothing() {
    for (status, says) in [
        (403, "Azure AuthorizationFailed"),
        (404, "Azure PermissionsUnavailable"),
    ] {
        let fake = fake_with_table("rt-perm");
        fake.state().permissions_refused = Some(status);
        match probe(&fake, one_route(1)) {
            Permission::NotProven(why) => assert!(
                why.contains(says)
                    && why.contains("listing the permissions on Route Table rt-perm"),
                "{why}"
            ),
            other => panic!("{status}: {other:?}"),
        }
    }
}

#[test]
fn a_dry_run_reads_plans_and_probes_once_without_writing() {
    use csr_ha::protocol::Status;
    let fake = fake_with_table("rt-perm");
    let nodes = vec![one_route(1), all_routes(2)];
    let run = util::azure_run::run_with(
        config(&fake),
        util::builders::DEADLINE_MS,
        Action::DryRun(EventKind::PeerFail),
        nodes,
    );
    let [first, second] = &run.outcomes[..] else {
        panic!("{:?}", run.outcomes)
    };
    util::assert_outcome(first, Status::Ok);
    assert_eq!(
        first.message,
        format!("10.99.0.0/16 in rt-perm would go via {OURS} (now {PEER}); write permitted")
    );
    // Node 2 (all routes) plans against the table as node 1's write would leave it.
    util::assert_outcome(second, Status::Ok);
    assert!(
        second
            .message
            .starts_with(&format!("10.98.0.0/16 in rt-perm would go via {OURS} (now {PEER}); 10.99.0.0/16 already via {OURS}")),
        "{}",
        second.message
    );
    let seen: Vec<_> = fake.seen().into_iter().filter(|s| !s.is_imds()).collect();
    assert_eq!(seen.iter().filter(|s| s.is_permissions()).count(), 1);
    assert!(
        seen.iter().all(|s| s.method == "GET"),
        "a dry run only reads: {seen:?}"
    );
    assert_eq!(fake.route("rt-perm", "to-dc").hop_ip.as_deref(), Some(PEER));

    // The permission list refused: a warning, not a failure.
    fake.state().permissions_refused = Some(403);
    let run = util::azure_run::run_with(
        config(&fake),
        util::builders::DEADLINE_MS,
        Action::DryRun(EventKind::PeerFail),
        vec![one_route(1)],
    );
    let out = util::azure_run::only(&run);
    util::assert_outcome(out, Status::Warning);
    assert!(
        out.message
            .contains("; write permission not proven: listing the permissions"),
        "{}",
        out.message
    );
}
