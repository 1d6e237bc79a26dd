//! AWS events against moto (a real EC2 Query API on loopback): which routes peerFail, revert,
//! verify and check write, in route and all-routes mode, IPv4 and IPv6. Nothing here contacts AWS.
//!
//! Needs `scripts/setup_venv.sh` once (or `CSR_HA_MOTO_SERVER`).

use crate::util;

use aws_moto::{routes, V4_OTHER, V4_ROUTE, V6_ROUTE};
use csr_ha::event::EventKind;
use csr_ha::node::Provider;
use csr_ha::protocol::Status;
use csr_ha::work::Action;
use util::aws_fakes::FakeEc2;
use util::aws_moto;
use util::aws_run::{event, keys_config, node, one, run_with, setup, ENI_A, ENI_B, RTB};

#[test]
fn peer_fail_revert_and_verify_move_one_route() {
    let s = setup();
    let (rtb, a, b) = (&s.vpc.rtb, &s.vpc.eni_a, &s.vpc.eni_b);
    let primary = node(1, rtb, a, Some(V4_ROUTE), "primary");
    let secondary = node(2, rtb, b, Some(V4_ROUTE), "secondary");

    let out = one(s.run(EventKind::PeerFail, vec![primary.clone()]));
    util::assert_outcome(&out, Status::Ok);
    util::assert_starts(&out, &format!("{V4_ROUTE} in {rtb} now via {a}, "));
    assert_eq!(s.eni_of(V4_ROUTE).as_deref(), Some(a.as_str()));
    assert_eq!(
        s.eni_of(V4_OTHER).as_deref(),
        Some(b.as_str()),
        "-r must move only its route"
    );

    let out = one(s.run(EventKind::PeerFail, vec![secondary.clone()]));
    util::assert_outcome(&out, Status::Ok);
    assert_eq!(s.eni_of(V4_ROUTE).as_deref(), Some(b.as_str()));

    // revert acts on primary nodes only.
    let out = one(s.run(EventKind::Revert, vec![primary.clone()]));
    util::assert_outcome(&out, Status::Ok);
    assert_eq!(s.eni_of(V4_ROUTE).as_deref(), Some(a.as_str()));
    let out = one(s.run(EventKind::Revert, vec![primary.clone()]));
    util::assert_says(&out, "already via");
    util::assert_says(&out, "no write");

    let out = one(s.run(EventKind::Verify, vec![primary]));
    util::assert_outcome(&out, Status::Ok);
    util::assert_starts(&out, &format!("{V4_ROUTE} in {rtb} verified via {a}"));
    assert_eq!(s.eni_of(V4_ROUTE).as_deref(), Some(a.as_str()));
    assert_eq!(s.eni_of(V4_OTHER).as_deref(), Some(b.as_str()));
}

#[test]
fn all_routes_mode_moves_every_eni_route_and_leaves_gateways_alone() {
    let s = setup();
    let ec2 = s.moto.client(aws_moto::any_keys());
    let before = routes(&ec2, &s.vpc.rtb);
    assert!(
        before.iter().any(|r| r.gateway.as_deref() == Some("local")),
        "{before:?}"
    );
    assert!(
        before
            .iter()
            .any(|r| r.gateway.as_deref() == Some(s.vpc.igw.as_str())),
        "{before:?}"
    );

    let out = one(s.run(
        EventKind::PeerFail,
        vec![node(3, &s.vpc.rtb, &s.vpc.eni_a, None, "primary")],
    ));
    util::assert_outcome(&out, Status::Ok);
    let after = routes(&ec2, &s.vpc.rtb);
    assert_eq!(after.len(), before.len());
    for (was, now) in before.iter().zip(&after) {
        assert_eq!(was.destination, now.destination);
        if was.eni.is_some() {
            assert_eq!(now.eni.as_deref(), Some(s.vpc.eni_a.as_str()), "{now:?}");
        } else {
            assert_eq!(was, now, "a non-ENI route changed");
        }
    }
    for dest in [V4_ROUTE, V4_OTHER, V6_ROUTE] {
        util::assert_says(
            &out,
            &format!("{dest} in {} now via {}", s.vpc.rtb, s.vpc.eni_a),
        );
    }

    // verify rewrites each ENI route with its current ENI and nothing else.
    let out = one(s.run(
        EventKind::Verify,
        vec![node(4, &s.vpc.rtb, &s.vpc.eni_b, None, "secondary")],
    ));
    util::assert_outcome(&out, Status::Ok);
    assert_eq!(
        out.message.matches("verified via").count(),
        3,
        "{}",
        out.message
    );
    assert_eq!(routes(&ec2, &s.vpc.rtb), after);
}

#[test]
fn ipv6_routes_move_with_their_own_parameter() {
    let s = setup();
    let out = one(s.run(
        EventKind::PeerFail,
        vec![node(
            5,
            &s.vpc.rtb,
            &s.vpc.eni_a,
            Some("2001:db8:1234:0::/48"),
            "primary",
        )],
    ));
    util::assert_outcome(&out, Status::Ok);
    assert_eq!(s.eni_of(V6_ROUTE).as_deref(), Some(s.vpc.eni_a.as_str()));
    assert_eq!(s.eni_of(V4_ROUTE).as_deref(), Some(s.vpc.eni_b.as_str()));
}

#[test]
fn a_missing_table_reports_aws_code_and_message() {
    let s = setup();
    let out = one(s.run(
        EventKind::PeerFail,
        vec![node(
            3,
            "rtb-0abc1234",
            &s.vpc.eni_a,
            Some(V4_ROUTE),
            "primary",
        )],
    ));
    util::assert_outcome(&out, Status::Failed);
    assert_eq!(
        out.message,
        "AWS InvalidRouteTableID.NotFound: The routeTable ID 'rtb-0abc1234' does not exist"
    );

    // The read-only check after create_node warns instead.
    let checked = one(run_with(
        &util::work(
            Action::Check,
            Provider::Aws,
            s.dir.path(),
            vec![node(3, "rtb-0abc1234", &s.vpc.eni_a, None, "primary")],
        ),
        &s.config,
    ));
    util::assert_outcome_says(&checked, Status::Warning, "InvalidRouteTableID.NotFound");
}

#[test]
fn a_missing_route_fails_without_writing() {
    let s = setup();
    let before = routes(&s.moto.client(aws_moto::any_keys()), &s.vpc.rtb);
    let out = one(s.run(
        EventKind::PeerFail,
        vec![node(
            6,
            &s.vpc.rtb,
            &s.vpc.eni_a,
            Some("10.77.0.0/16"),
            "primary",
        )],
    ));
    // A peerFail is sent unread: the missing route is EC2's own error (moto answers as EC2
    // does; the loopback fake's InvalidRoute.NotFound is checked beside the request count).
    util::assert_outcome(&out, Status::Failed);
    assert_eq!(
        out.message,
        "AWS InvalidParameterValue: There is no route defined for '10.77.0.0/16' in the route table. Use CreateRoute instead."
    );
    assert_eq!(
        routes(&s.moto.client(aws_moto::any_keys()), &s.vpc.rtb),
        before
    );

    // Events that read first find it missing themselves.
    let out = one(s.run(
        EventKind::Revert,
        vec![node(
            6,
            &s.vpc.rtb,
            &s.vpc.eni_a,
            Some("10.77.0.0/16"),
            "primary",
        )],
    ));
    assert_eq!(
        out.message,
        format!("Route 10.77.0.0/16 not found in Route Table {}", s.vpc.rtb)
    );

    // The local route exists but points at no router: a revert leaves it alone.
    let out = one(s.run(
        EventKind::Revert,
        vec![node(
            6,
            &s.vpc.rtb,
            &s.vpc.eni_a,
            Some("10.0.0.0/16"),
            "primary",
        )],
    ));
    util::assert_outcome_says(&out, Status::Failed, "does not point at a router");
}

#[test]
fn nodes_sharing_a_table_are_served_by_one_read() {
    // A revert reads first (a peerFail of nodes with routes reads nothing at all).
    let ec2 = FakeEc2::start(
        RTB,
        &[
            ("10.99.0.0/16", ENI_B),
            ("10.98.0.0/16", ENI_B),
            ("10.97.0.0/16", ENI_A),
        ],
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let nodes = vec![
        node(7, RTB, ENI_A, Some("10.99.0.0/16"), "primary"),
        node(8, RTB, ENI_A, Some("10.98.0.0/16"), "primary"),
        node(9, RTB, ENI_A, Some("10.97.0.0/16"), "primary"),
    ];
    let outcomes = event(
        EventKind::Revert,
        &keys_config(&ec2.endpoint, aws_moto::any_keys()),
        dir.path(),
        nodes,
    );
    assert!(
        outcomes.iter().all(|o| o.outcome == Status::Ok),
        "{outcomes:?}"
    );
    let mut calls: Vec<(String, Option<String>)> = ec2
        .calls()
        .into_iter()
        .map(|c| (c.action, c.params.get("DestinationCidrBlock").cloned()))
        .collect();
    // The writes go out concurrently, so in either order.
    calls[1..].sort();
    assert_eq!(
        calls,
        [
            ("DescribeRouteTables".into(), None),
            ("ReplaceRoute".into(), Some("10.98.0.0/16".into())),
            ("ReplaceRoute".into(), Some("10.99.0.0/16".into())),
        ]
    );
}

/// A warm peerFail of a node with a route is one request: `ReplaceRoute`, sent at once and
/// reported from its answer; IPv6 routes name `DestinationIpv6CidrBlock`; a route that is not
/// there is EC2's own error. Revert still reads first and writes nothing when nothing changes.
#[test]
fn a_peer_fail_with_a_route_is_one_replace_route_and_nothing_else() {
    let ec2 = FakeEc2::start(RTB, &[("10.99.0.0/16", ENI_B), ("2001:db8:1::/64", ENI_B)]);
    let config = keys_config(&ec2.endpoint, aws_moto::any_keys());
    let dir = tempfile::tempdir().expect("temp dir");
    let run = |kind, route: &str| {
        one(event(
            kind,
            &config,
            dir.path(),
            vec![node(1, RTB, ENI_A, Some(route), "primary")],
        ))
    };

    let out = run(EventKind::PeerFail, "10.99.0.0/16");
    util::assert_outcome(&out, Status::Ok);
    util::assert_starts(&out, &format!("10.99.0.0/16 in {RTB} now via {ENI_A}"));
    let calls = ec2.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].action, "ReplaceRoute");
    assert_eq!(
        calls[0]
            .params
            .get("DestinationCidrBlock")
            .map(String::as_str),
        Some("10.99.0.0/16")
    );
    assert_eq!(
        calls[0]
            .params
            .get("NetworkInterfaceId")
            .map(String::as_str),
        Some(ENI_A)
    );
    assert_eq!(ec2.eni_of("10.99.0.0/16").as_deref(), Some(ENI_A));

    let out = run(EventKind::PeerFail, "2001:db8:1::/64");
    util::assert_outcome(&out, Status::Ok);
    let calls = ec2.calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(
        calls[1]
            .params
            .get("DestinationIpv6CidrBlock")
            .map(String::as_str),
        Some("2001:db8:1::/64")
    );

    let out = run(EventKind::PeerFail, "10.55.0.0/16");
    util::assert_outcome(&out, Status::Failed);
    util::assert_starts(&out, "AWS InvalidRoute.NotFound");
    assert_eq!(ec2.calls().len(), 3);

    // Revert reads first, and does not write a route already via this router.
    let out = run(EventKind::Revert, "10.99.0.0/16");
    util::assert_says(&out, "already via");
    let actions: Vec<String> = ec2
        .calls()
        .iter()
        .skip(3)
        .map(|c| c.action.clone())
        .collect();
    assert_eq!(actions, ["DescribeRouteTables"]);
}
