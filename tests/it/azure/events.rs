//! Azure events against a stateful fake of ARM, IMDS and the AAD login endpoint on 127.0.0.1
//! (tests/fakes/src/azure_fake): which routes peerFail, revert and verify write, in route and
//! all-routes mode. Endpoints are passed in an [`AzureConfig`](csr_ha::cloud::azure::AzureConfig),
//! never through the environment, so the tests run in parallel safely.

use crate::util;

use csr_ha::event::EventKind;
use csr_ha::node::{Node, Param};
use csr_ha::protocol::Status;
use std::time::Instant;
use util::azure_fake::{Fake, FakeRoute, Writes};
use util::azure_run::{fake_with_table, node, only, puts, run, OURS, PEER};

#[test]
fn peer_fail_moves_only_the_named_route_with_a_managed_identity() {
    let fake = fake_with_table("rt-a");
    let n = node(1, "rt-a", OURS, Some("10.99.0.0/16"));
    let run = run(&fake, EventKind::PeerFail, vec![n]);

    let out = only(&run);
    util::assert_outcome_says(
        out,
        Status::Ok,
        "10.99.0.0/16 in rt-a now via 10.0.1.20 (was 10.0.1.10)",
    );
    assert_eq!(fake.route("rt-a", "to-dc").hop_ip.as_deref(), Some(OURS));
    assert_eq!(
        fake.route("rt-a", "to-branch").hop_ip.as_deref(),
        Some(PEER)
    );
    assert_eq!(puts(&fake), ["to-dc"]);

    let seen = fake.seen();
    let imds: Vec<_> = seen.iter().filter(|s| s.is_imds()).collect();
    assert_eq!(imds.len(), 1, "one token request");
    assert_eq!(imds[0].header("Metadata"), Some("true"));
    assert!(
        imds[0].url.contains("api-version=2018-02-01"),
        "{}",
        imds[0].url
    );
    assert!(
        !seen.iter().any(|s| s.is_login()),
        "no app credentials, no login"
    );
    let token = fake.state().imds_token.clone();
    for arm in seen.iter().filter(|s| !s.is_imds()) {
        assert_eq!(
            arm.header("Authorization"),
            Some(format!("Bearer {token}").as_str())
        );
        assert!(arm.url.contains("api-version=2024-05-01"), "{}", arm.url);
    }
    let put = seen.iter().find(|s| s.is_route_put()).expect("a PUT");
    let body: serde_json::Value = serde_json::from_str(&put.body).expect("JSON body");
    assert_eq!(
        body,
        serde_json::json!({"properties": {"addressPrefix": "10.99.0.0/16", "nextHopType": "VirtualAppliance", "nextHopIpAddress": OURS}})
    );
}

#[test]
fn peer_fail_without_a_route_moves_every_appliance_route_and_nothing_else() {
    let fake = Fake::start();
    fake.add_table(
        "rt-all",
        vec![
            FakeRoute::appliance("a", "10.99.0.0/16", PEER),
            FakeRoute::other("internet", "0.0.0.0/0", "Internet"),
            FakeRoute::appliance("b", "10.98.0.0/16", PEER),
            FakeRoute::appliance("c", "10.97.0.0/16", OURS),
            FakeRoute::other("gateway", "192.168.0.0/16", "VirtualNetworkGateway"),
            FakeRoute::other("blackhole", "10.66.0.0/16", "None"),
        ],
    );
    let before = fake.routes("rt-all");
    let n = node(2, "rt-all", OURS, None);
    let run = run(&fake, EventKind::PeerFail, vec![n]);

    let out = only(&run);
    util::assert_outcome(out, Status::Ok);
    assert!(puts(&fake).is_empty(), "no route PUT in all-routes mode");
    let table_puts: Vec<_> = fake
        .seen()
        .into_iter()
        .filter(|s| s.is_table_put())
        .collect();
    assert_eq!(table_puts.len(), 1, "the table is written once");
    assert_eq!(table_puts[0].header("If-Match"), Some("W/\"0\""));
    util::assert_says(out, "10.97.0.0/16 already via 10.0.1.20");
    let after = fake.routes("rt-all");
    for (old, new) in before.iter().zip(&after) {
        match old.name.as_str() {
            "a" | "b" => assert_eq!(new.hop_ip.as_deref(), Some(OURS)),
            _ => assert_eq!(old, new, "{} must not change", old.name),
        }
    }
}

#[test]
fn ipv6_routes_move_and_keep_their_prefix_as_azure_wrote_it() {
    let fake = Fake::start();
    fake.add_table(
        "rt-v6",
        vec![
            FakeRoute::appliance("v4", "10.99.0.0/16", PEER),
            FakeRoute::appliance("v6", "2001:DB8:99::/48", "2001:db8::10"),
        ],
    );
    let n = node(3, "rt-v6", "2001:db8::20", Some("2001:db8:99::/48"));
    let run = run(&fake, EventKind::PeerFail, vec![n]);

    let out = only(&run);
    util::assert_outcome_says(
        out,
        Status::Ok,
        "2001:db8:99::/48 in rt-v6 now via 2001:db8::20 (was 2001:db8::10)",
    );
    let v6 = fake.route("rt-v6", "v6");
    assert_eq!(v6.hop_ip.as_deref(), Some("2001:db8::20"));
    assert_eq!(v6.prefix, "2001:DB8:99::/48");
    assert_eq!(fake.route("rt-v6", "v4").hop_ip.as_deref(), Some(PEER));
}

#[test]
fn verify_puts_the_route_back_unchanged() {
    let fake = fake_with_table("rt-verify");
    let before = fake.routes("rt-verify");
    let n = node(10, "rt-verify", OURS, Some("10.99.0.0/16"));
    let run = run(&fake, EventKind::Verify, vec![n]);

    let out = only(&run);
    util::assert_outcome_says(
        out,
        Status::Ok,
        "10.99.0.0/16 in rt-verify verified via 10.0.1.10",
    );
    assert_eq!(puts(&fake), ["to-dc"]);
    let put = fake
        .seen()
        .into_iter()
        .find(|s| s.is_route_put())
        .expect("a PUT");
    assert!(
        put.body.contains(r#""nextHopIpAddress":"10.0.1.10""#),
        "{}",
        put.body
    );
    assert_eq!(fake.routes("rt-verify"), before);
}

#[test]
fn verify_does_not_restore_a_route_changed_since_it_was_read() {
    let fake = fake_with_table("rt-race");
    // A peerFail of the other router lands between verify's read and its write.
    fake.change_after_read("rt-race", "to-dc", "10.0.1.30");
    let n = node(11, "rt-race", PEER, Some("10.99.0.0/16"));
    let run = run(&fake, EventKind::Verify, vec![n]);

    let out = only(&run);
    util::assert_outcome_says(
        out,
        Status::Warning,
        "10.99.0.0/16 in rt-race changed meanwhile (now via 10.0.1.30): not rewritten",
    );
    assert_eq!(
        fake.route("rt-race", "to-dc").hop_ip.as_deref(),
        Some("10.0.1.30"),
        "the other writer's hop stays"
    );
    let seen = fake.seen();
    let put = seen.iter().find(|s| s.is_route_put()).expect("a PUT");
    assert_eq!(put.header("If-Match"), Some("W/\"0\""), "the etag read");
    assert_eq!(put.status, 412);
}

#[test]
fn all_routes_mode_writes_the_table_once_and_rereads_it_on_412() {
    let fake = Fake::start();
    let mut routes: Vec<FakeRoute> = (0..100)
        .map(|i| FakeRoute::appliance(&format!("r{i}"), &format!("10.{i}.0.0/16"), PEER))
        .collect();
    routes.push(FakeRoute::other("web", "0.0.0.0/0", "Internet"));
    fake.add_table("rt-big", routes);
    // Another writer changes the table between the read and the table PUT.
    fake.change_after_read("rt-big", "r7", "10.0.1.30");
    let n = node(12, "rt-big", OURS, None);
    let run = run(&fake, EventKind::PeerFail, vec![n]);

    let out = only(&run);
    util::assert_outcome(out, Status::Ok);
    let seen = fake.seen();
    let table_puts: Vec<_> = seen.iter().filter(|s| s.is_table_put()).collect();
    assert_eq!(
        table_puts.iter().map(|s| s.status).collect::<Vec<_>>(),
        [412, 200],
        "one 412, then the recomputed table"
    );
    assert_eq!(table_puts[0].header("If-Match"), Some("W/\"0\""));
    assert_eq!(table_puts[1].header("If-Match"), Some("W/\"1\""));
    assert_eq!(seen.iter().filter(|s| s.is_table_get()).count(), 2);
    assert!(puts(&fake).is_empty());
    let body: serde_json::Value = serde_json::from_str(&table_puts[1].body).expect("json");
    assert_eq!(body["location"], "westeurope");
    assert_eq!(body["tags"]["owner"], "csr-ha-test", "tags are kept");
    assert!(body["properties"].get("provisioningState").is_none());
    for r in fake.routes("rt-big") {
        match r.name.as_str() {
            "web" => assert_eq!(r.hop_ip, None),
            _ => assert_eq!(r.hop_ip.as_deref(), Some(OURS), "{}", r.name),
        }
    }
}

#[test]
fn all_routes_verify_keeps_a_route_changed_meanwhile() {
    let fake = fake_with_table("rt-av");
    fake.change_after_read("rt-av", "to-branch", "10.0.1.30");
    let n = node(13, "rt-av", PEER, None);
    let run = run(&fake, EventKind::Verify, vec![n]);

    let out = only(&run);
    util::assert_outcome(out, Status::Warning);
    assert!(
        out.message
            .contains("10.98.0.0/16 in rt-av changed meanwhile (now via 10.0.1.30): not rewritten")
            && out
                .message
                .contains("10.99.0.0/16 in rt-av verified via 10.0.1.10"),
        "{}",
        out.message
    );
    assert_eq!(
        fake.route("rt-av", "to-branch").hop_ip.as_deref(),
        Some("10.0.1.30")
    );
}

#[test]
fn several_nodes_of_one_table_share_one_read() {
    let fake = fake_with_table("rt-group");
    let run = run(
        &fake,
        EventKind::PeerFail,
        vec![
            node(16, "rt-group", OURS, Some("10.99.0.0/16")),
            node(17, "rt-group", OURS, Some("10.98.0.0/16")),
        ],
    );
    assert!(
        run.outcomes.iter().all(|o| o.outcome == Status::Ok),
        "{:?}",
        run.outcomes
    );
    assert_eq!(fake.seen().iter().filter(|s| s.is_table_get()).count(), 1);
    assert_eq!(puts(&fake), ["to-dc", "to-branch"]);
}

#[test]
fn open_names_a_missing_parameter() {
    let fake = Fake::start();
    let mut n = node(20, "rt-x", OURS, None);
    n.remove(Param::ResourceGroup);
    let run = run(&fake, EventKind::PeerFail, vec![n]);
    util::assert_outcome_says(only(&run), Status::Failed, "resourceGroup (-g)");
    assert!(fake.seen().is_empty());
}

/// Latency of peerFail against the loopback fake, and requests made. Not a pass/fail test: run
/// `cargo test --release --test azure -- --ignored --nocapture bench_` and copy the numbers into
/// BENCHMARKS.md.
#[test]
#[ignore = "benchmark: run on demand"]
fn bench_peer_fail_against_the_fake() {
    fn stats(mut ms: Vec<f64>) -> String {
        ms.sort_by(f64::total_cmp);
        let pick = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
        format!(
            "median {:.2} ms, p95 {:.2} ms, max {:.2} ms (n={})",
            pick(0.5),
            pick(0.95),
            pick(1.0),
            ms.len()
        )
    }
    fn timed(fake: &Fake, nodes: Vec<Node>) -> (f64, usize) {
        let before = fake.seen().len();
        let started = Instant::now();
        let run = run(fake, EventKind::PeerFail, nodes);
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        assert!(
            run.outcomes.iter().all(|o| o.outcome == Status::Ok),
            "{:?}",
            run.outcomes
        );
        (ms, fake.seen().len() - before)
    }

    // One node, one route (-r); every event moves the route (the next hop alternates).
    let fake = fake_with_table("rt-bench");
    let (cold, cold_requests) = timed(&fake, vec![node(1, "rt-bench", OURS, Some("10.99.0.0/16"))]);
    let mut warm = Vec::new();
    let mut warm_requests = 0;
    for i in 0..200 {
        let hop = if i % 2 == 0 { PEER } else { OURS };
        let (ms, requests) = timed(&fake, vec![node(1, "rt-bench", hop, Some("10.99.0.0/16"))]);
        warm.push(ms);
        warm_requests = requests;
    }
    println!("one node, one route, cold (token fetched): {cold:.2} ms, {cold_requests} requests");
    println!(
        "one node, one route, warm: {}, {warm_requests} requests each",
        stats(warm)
    );

    // 100 routes in one table, all moved by one node without -r.
    for writes in [Writes::Immediate, Writes::AzureAsync] {
        let fake = Fake::start();
        fake.state().writes = writes;
        let routes = (0..100)
            .map(|i| {
                FakeRoute::appliance(
                    &format!("r{i}"),
                    &format!("10.{}.{}.0/24", 100 + i / 256, i % 256),
                    PEER,
                )
            })
            .collect();
        fake.add_table("rt-100", routes);
        let mut times = Vec::new();
        let mut requests = Vec::new();
        for i in 0..10 {
            let hop = if i % 2 == 0 { OURS } else { PEER };
            let (ms, n) = timed(&fake, vec![node(2, "rt-100", hop, None)]);
            times.push(ms);
            requests.push(n);
        }
        println!(
            "100 routes, {writes:?} writes: {}, requests per event {requests:?}",
            stats(times)
        );
    }
}

#[test]
fn a_route_without_a_name_is_read_never_moved_and_sent_back_as_it_was() {
    let fake = Fake::start();
    fake.add_table(
        "rt-nameless",
        vec![
            FakeRoute::appliance("to-dc", "10.99.0.0/16", PEER),
            FakeRoute::nameless("10.97.0.0/16", PEER),
        ],
    );
    let n = node(2, "rt-nameless", OURS, None);
    let run = run(&fake, EventKind::PeerFail, vec![n]);

    let out = only(&run);
    util::assert_outcome_says(
        out,
        Status::Warning,
        "10.99.0.0/16 in rt-nameless now via 10.0.1.20 (was 10.0.1.10); 10.97.0.0/16 not moved: \
         it has no name, so Azure Resource Manager cannot address it",
    );
    let put = fake
        .seen()
        .into_iter()
        .find(|s| s.is_table_put())
        .expect("one table PUT");
    let body: serde_json::Value = serde_json::from_str(&put.body).expect("json");
    assert_eq!(
        body["properties"]["routes"][1],
        serde_json::json!({"properties": {"addressPrefix": "10.97.0.0/16",
            "nextHopType": "VirtualAppliance", "nextHopIpAddress": PEER}}),
        "the nameless route goes back as it was read"
    );
    let routes = fake.routes("rt-nameless");
    assert_eq!(routes[0].hop_ip.as_deref(), Some(OURS));
    assert_eq!(routes[1], FakeRoute::nameless("10.97.0.0/16", PEER));
}

#[test]
fn a_node_whose_route_has_no_name_is_told_why_and_nothing_is_written() {
    let fake = Fake::start();
    fake.add_table(
        "rt-nameless-r",
        vec![FakeRoute::nameless("10.97.0.0/16", PEER)],
    );
    let n = node(3, "rt-nameless-r", OURS, Some("10.97.0.0/16"));
    let run = run(&fake, EventKind::PeerFail, vec![n]);

    util::assert_outcome_says(
        only(&run),
        Status::Failed,
        "Route 10.97.0.0/16 in Route Table rt-nameless-r is not moved: it has no name, so Azure \
         Resource Manager cannot address it",
    );
    assert!(fake.seen().iter().all(|s| s.method == "GET" || s.is_imds()));
}

#[test]
fn all_routes_mode_moves_only_the_next_hops_address_family_both_ways() {
    for (ours, moved, left, family) in [
        (OURS, "v4", "2001:db8:99::/64", "IPv4"),
        ("2001:db8::20", "v6", "10.99.0.0/16", "IPv6"),
    ] {
        let fake = Fake::start();
        fake.add_table(
            "rt-mixed",
            vec![
                FakeRoute::appliance("v4", "10.99.0.0/16", PEER),
                FakeRoute::appliance("v6", "2001:db8:99::/64", "2001:db8::10"),
            ],
        );
        let before = fake.routes("rt-mixed");
        let n = node(2, "rt-mixed", ours, None);
        let run = run(&fake, EventKind::PeerFail, vec![n]);

        let out = only(&run);
        util::assert_outcome_says(
            out,
            Status::Warning,
            &format!("; {left} not moved: next hop {ours} is {family}"),
        );
        for (old, new) in before.iter().zip(fake.routes("rt-mixed")) {
            if old.name == moved {
                assert_eq!(new.hop_ip.as_deref(), Some(ours), "{ours}");
            } else {
                assert_eq!(*old, new, "{ours}: {} must not move", old.name);
            }
        }
    }
}
