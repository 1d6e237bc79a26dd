//! How the GCP provider meets slow and failed operations, API errors, throttling and an
//! unreachable metadata server (against the loopback fake of tests/fakes/src/gcp_fake): waited
//! for or retried where GCP says to, reported with the API's own words otherwise.

use crate::util;

use csr_ha::cloud::gcp::GcpConfig;
use csr_ha::event::EventKind;
use csr_ha::node::Param;
use csr_ha::protocol::Status;
use csr_ha::work::Action;
use serde_json::json;
use util::gcp_fake::GcpFake;
use util::gcp_run::{
    config, event_logs, event_on, node, peer_fail, router_a, run, seed_pair, started, PROJECT, VPC,
};

#[test]
fn an_operation_that_finishes_after_two_polls_is_waited_for() {
    let (fake, dir) = started();
    seed_pair(&fake);
    fake.state().polls_until_done = 2;
    let out = peer_fail(&config(&fake), dir.path());
    util::assert_outcome(&out, Status::Ok);
    let waits: Vec<u32> = fake.state().waits.values().copied().collect();
    assert_eq!(waits, vec![2]);
    assert!(fake.route(PROJECT, "route-b").is_none());
}

#[test]
fn an_operation_error_is_reported_with_its_message() {
    let fake = GcpFake::start();
    fake.state().op_error = Some((
        "RESOURCE_NOT_FOUND".into(),
        "The resource 'projects/proj-1/global/networks/vpc-1' was not found".into(),
    ));
    let dir = tempfile::tempdir().expect("tempdir");
    let out = event_on(&fake, dir.path(), EventKind::Revert, router_a("primary"));
    util::assert_outcome(&out, Status::Failed);
    util::assert_starts(&out, "cannot re-insert route route-a: GCP RESOURCE_NOT_FOUND: The resource 'projects/proj-1/global/networks/vpc-1' was not found (operation operation-1-insert)");
    assert!(fake.route(PROJECT, "route-a").is_none());
    let logs = event_logs(dir.path());
    assert_eq!(logs.len(), 1, "a failed revert leaves a log");
    assert!(
        logs[0].contains("Error: cannot re-insert route route-a"),
        "{}",
        logs[0]
    );
}

#[test]
fn a_403_is_reported_with_the_apis_message_and_nothing_changes() {
    let fake = GcpFake::start();
    seed_pair(&fake);
    let message =
        "Required 'compute.routes.delete' permission for 'projects/proj-1/global/routes/route-b'";
    let body = json!({"error": {"code": 403, "message": message, "status": "PERMISSION_DENIED",
        "errors": [{"message": message, "domain": "global", "reason": "forbidden"}]}});
    fake.script("DELETE", "/routes/route-b", 403, &body.to_string());
    let dir = tempfile::tempdir().expect("tempdir");
    let out = peer_fail(&config(&fake), dir.path());
    util::assert_outcome(&out, Status::Failed);
    assert_eq!(
        out.message,
        format!("cannot delete peer route route-b: GCP 403 PERMISSION_DENIED: {message}")
    );
    assert!(fake.route(PROJECT, "route-b").is_some());
    assert_eq!(
        fake.requests_with("DELETE").len(),
        1,
        "a 403 is not retried"
    );
}

#[test]
fn a_429_is_retried_until_it_succeeds() {
    let fake = GcpFake::start();
    seed_pair(&fake);
    let body = json!({"error": {"code": 429, "message": "Rate Limit Exceeded", "status": "RESOURCE_EXHAUSTED"}});
    fake.script("GET", "/routes/route-b", 429, &body.to_string());
    fake.script(
        "DELETE",
        "/routes/route-b",
        503,
        "<html>Service Unavailable</html>",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let out = peer_fail(&config(&fake), dir.path());
    util::assert_outcome(&out, Status::Ok);
    assert_eq!(
        fake.requests_with("GET /compute/v1/projects/proj-1/global/routes/route-b")
            .len(),
        2
    );
    assert_eq!(fake.requests_with("DELETE").len(), 2);
    assert!(fake.route(PROJECT, "route-b").is_none());
}

/// Compute's throttling is a 403 whose reason is `rateLimitExceeded` (or the older
/// `userRateLimitExceeded`), "wait a minute then try your request again": retried like a 429,
/// unlike the 403 of a missing permission.
#[test]
fn a_403_rate_limit_exceeded_is_throttling_and_retried() {
    let fake = GcpFake::start();
    seed_pair(&fake);
    for reason in ["rateLimitExceeded", "userRateLimitExceeded"] {
        let body = json!({"error": {"code": 403, "message": "Rate Limit Exceeded",
            "errors": [{"message": "Rate Limit Exceeded", "domain": "usageLimits", "reason": reason}]}});
        fake.script("DELETE", "/routes/route-b", 403, &body.to_string());
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let out = peer_fail(&config(&fake), dir.path());
    util::assert_outcome(&out, Status::Ok);
    assert_eq!(
        fake.requests_with("DELETE").len(),
        3,
        "two throttled tries, then the delete"
    );
    assert!(fake.route(PROJECT, "route-b").is_none());
}

#[test]
fn an_unreachable_metadata_server_fails_every_node_with_a_hint() {
    let fake = GcpFake::start();
    let dead_host = format!("127.0.0.1:{}", util::loopback::free_port());
    let config = GcpConfig {
        metadata_host: dead_host,
        ..config(&fake)
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let nodes = vec![
        router_a("secondary"),
        node(
            4,
            "secondary",
            "route-c",
            "route-d",
            "10.0.1.20",
            "1",
            "10.98.0.0/16",
        ),
    ];
    let outs = run(
        &config,
        dir.path(),
        Action::Event(EventKind::PeerFail),
        nodes,
    );
    for out in outs {
        util::assert_outcome(&out, Status::Failed);
        util::assert_starts(&out, "credentials: metadata server 127.0.0.1:");
        util::assert_says(&out, "GOOGLE_APPLICATION_CREDENTIALS");
    }
    assert!(fake.requests_with("/compute/").is_empty());
}

/// The `requestId` of every route write the fake saw, in order.
fn write_ids(fake: &GcpFake) -> Vec<String> {
    let ids = fake.state().write_ids.clone();
    ids.into_iter()
        .map(|id| id.expect("every insert and delete carries a requestId"))
        .collect()
}

#[test]
fn a_failover_whose_answer_is_lost_is_sent_again_and_applied_once() {
    let (fake, dir) = started();
    seed_pair(&fake);
    fake.lose_answer("DELETE", "/routes/route-b");
    let out = peer_fail(&config(&fake), dir.path());
    util::assert_outcome(&out, Status::Ok);
    util::assert_starts(&out, "deleted peer route route-b (10.99.0.0/16 via 10.0.1.10); route-a via 10.0.1.20 now carries it, ");
    assert!(fake.route(PROJECT, "route-b").is_none());
    sent_twice_applied_once(&fake, dir.path(), "Deleted peer route route-b");
}

#[test]
fn an_insert_whose_answer_is_lost_is_sent_again_and_leaves_one_route() {
    let (fake, dir) = started();
    fake.put_route(PROJECT, VPC, "route-b", "10.99.0.0/16", "10.0.1.10", 200);
    fake.state().polls_until_done = 2;
    fake.lose_answer("POST", "/global/routes");
    let out = event_on(&fake, dir.path(), EventKind::Revert, router_a("secondary"));
    util::assert_outcome(&out, Status::Ok);
    util::assert_starts(&out, "re-inserted route route-a (10.99.0.0/16 via 10.0.1.20, priority 100) in project proj-1 vpc vpc-1, ");
    sent_twice_applied_once(&fake, dir.path(), "Inserted route route-a");
    let routes: Vec<String> = fake.state().routes.keys().cloned().collect();
    assert_eq!(routes, vec!["proj-1/route-a", "proj-1/route-b"]);
}

/// The one write was sent twice with the same requestId, applied once, and logged once.
fn sent_twice_applied_once(fake: &GcpFake, dir: &std::path::Path, logged: &str) {
    let ids = write_ids(fake);
    assert_eq!(ids.len(), 2, "the write was sent again: {ids:?}");
    assert_eq!(ids[0], ids[1], "with the same requestId");
    assert_eq!(fake.state().writes, 1, "and applied once");
    let logs = event_logs(dir);
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0].matches(logged).count(), 1, "{}", logs[0]);
}

#[test]
fn each_logical_write_gets_its_own_request_id() {
    let (fake, dir) = started();
    let out = event_on(&fake, dir.path(), EventKind::Verify, router_a("primary"));
    util::assert_outcome(&out, Status::Ok);
    let ids = write_ids(&fake);
    assert_eq!(ids.len(), 2, "insert and delete of the probe");
    assert_ne!(ids[0], ids[1]);
    for id in &ids {
        let groups: Vec<usize> = id.split('-').map(str::len).collect();
        assert_eq!(groups, vec![8, 4, 4, 4, 12], "a UUID: {id}");
    }
}

#[test]
fn a_node_whose_route_and_next_hop_differ_in_family_writes_nothing_and_says_why() {
    let (fake, dir) = started();
    seed_pair(&fake);
    let v6_route = util::with_params(router_a("secondary"), &[(Param::Route, "2001:db8:99::/48")]);
    for kind in [EventKind::PeerFail, EventKind::Revert, EventKind::Verify] {
        let out = event_on(&fake, dir.path(), kind, v6_route.clone());
        util::assert_outcome(&out, Status::Failed);
        assert_eq!(
            out.message,
            "next hop 10.0.1.20 (-n) cannot carry 2001:db8:99::/48 (-r): one is IPv4, the other IPv6; nothing written: correct -n or -r with set_params"
        );
    }
    assert!(fake.requests_with("/compute/").is_empty());
    assert!(fake.route(PROJECT, "route-b").is_some());
    let check = run(&config(&fake), dir.path(), Action::Check, vec![v6_route]).remove(0);
    util::assert_outcome(&check, Status::Warning);
    util::assert_starts(
        &check,
        "Warning: next hop 10.0.1.20 (-n) cannot carry 2001:db8:99::/48 (-r)",
    );
}
