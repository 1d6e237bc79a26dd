//! The GCP provider against a stateful fake of the Compute routes and operations API, the
//! metadata server and the OAuth token endpoint, all on 127.0.0.1. Endpoints and credentials go
//! in through `GcpConfig`, so no test touches the process environment.

mod util;

use util::gcp_fake;

use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine;
use csr_ha::cloud::gcp::{self, GcpConfig};
use csr_ha::cloud::token_cache::TokenCache;
use csr_ha::cloud::{Action, NodeOutcome, Outcome, Work};
use csr_ha::event::EventKind;
use csr_ha::event_log::EventLog;
use csr_ha::node::{Node, Param, Provider};
use gcp_fake::GcpFake;
use serde_json::json;

const PROJECT: &str = "proj-1";
const VPC: &str = "vpc-1";

/// A router's node: its own route `own` via `hop` at `priority`, its peer's route `peer`.
fn node(
    index: u16,
    mode: &str,
    own: &str,
    peer: &str,
    hop: &str,
    priority: &str,
    route: &str,
) -> Node {
    let params = [
        (Param::Cloud, "gcp"),
        (Param::Project, PROJECT),
        (Param::Vpc, VPC),
        (Param::RouteName, own),
        (Param::PeerRouteName, peer),
        (Param::NextHopIp, hop),
        (Param::HopPriority, priority),
        (Param::Route, route),
        (Param::Mode, mode),
    ];
    util::node(index, Provider::Gcp, &params)
}

/// Node 3 on router A (10.0.1.20, route-a at priority 100); its peer B owns route-b.
fn router_a(mode: &str) -> Node {
    node(
        3,
        mode,
        "route-a",
        "route-b",
        "10.0.1.20",
        "100",
        "10.99.0.0/16",
    )
}

/// The pair's routes as they are before a failover.
fn seed_pair(fake: &GcpFake) {
    fake.put_route(PROJECT, VPC, "route-a", "10.99.0.0/16", "10.0.1.20", 100);
    fake.put_route(PROJECT, VPC, "route-b", "10.99.0.0/16", "10.0.1.10", 200);
}

fn config(fake: &GcpFake) -> GcpConfig {
    GcpConfig {
        compute_endpoint: fake.url.clone(),
        metadata_host: fake.host.clone(),
        credentials: None,
        cache: TokenCache::at(fake.cache.path().join("credentials")),
    }
}

/// Runs one action as a handler would: event log opened, provider run, logs written.
fn run(config: &GcpConfig, dir: &Path, action: Action, nodes: Vec<Node>) -> Vec<NodeOutcome> {
    let work = util::work(action, Provider::Gcp, dir, nodes);
    let deadline = Instant::now() + Duration::from_millis(work.deadline_ms);
    let mut log = EventLog::new(&work);
    let outcomes = gcp::run_with(&work, deadline, &mut log, config);
    log.finish(&outcomes);
    outcomes
}

fn event(config: &GcpConfig, dir: &Path, kind: EventKind, node: Node) -> NodeOutcome {
    run(config, dir, Action::Event(kind), vec![node]).remove(0)
}

/// Every file under `dir`, with its text.
fn files(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            let text =
                String::from_utf8_lossy(&std::fs::read(&path).expect("read file")).into_owned();
            out.push((path.display().to_string(), text));
        }
    }
    out
}

fn event_logs(dir: &Path) -> Vec<String> {
    files(dir)
        .into_iter()
        .filter(|(p, _)| p.contains("/events/node_"))
        .map(|(_, t)| t)
        .collect()
}

fn writes(fake: &GcpFake) -> Vec<String> {
    fake.state()
        .requests
        .iter()
        .filter(|r| (r.starts_with("POST") && !r.ends_with("/wait")) || r.starts_with("DELETE"))
        .cloned()
        .collect()
}

#[test]
fn peer_fail_on_a_secondary_deletes_the_peer_route() {
    let fake = GcpFake::start();
    seed_pair(&fake);
    let dir = tempfile::tempdir().expect("tempdir");
    let out = event(
        &config(&fake),
        dir.path(),
        EventKind::PeerFail,
        router_a("secondary"),
    );
    assert_eq!(out.outcome, Outcome::Ok, "{}", out.message);
    assert!(
        out.message.starts_with(
            "deleted peer route route-b (10.99.0.0/16 via 10.0.1.10); route-a via 10.0.1.20 now carries it, "
        ) && out.message.ends_with(" ms"),
        "{}",
        out.message
    );
    assert!(
        fake.route(PROJECT, "route-b").is_none(),
        "peer route still there"
    );
    assert!(fake.route(PROJECT, "route-a").is_some(), "own route gone");
    assert_eq!(
        writes(&fake),
        vec!["DELETE /compute/v1/projects/proj-1/global/routes/route-b"]
    );
    let logs = event_logs(dir.path());
    assert_eq!(logs.len(), 1);
    assert!(
        logs[0].contains("Deleted peer route route-b (10.99.0.0/16 via 10.0.1.10)"),
        "{}",
        logs[0]
    );
}

#[test]
fn peer_fail_on_a_primary_changes_nothing_and_says_why() {
    let fake = GcpFake::start();
    seed_pair(&fake);
    let dir = tempfile::tempdir().expect("tempdir");
    let out = event(
        &config(&fake),
        dir.path(),
        EventKind::PeerFail,
        router_a("primary"),
    );
    assert_eq!(out.outcome, Outcome::Ok, "{}", out.message);
    assert!(
        out.message
            .starts_with("primary node: route route-a (priority 100) already wins"),
        "{}",
        out.message
    );
    assert!(out.message.ends_with("no write"), "{}", out.message);
    assert!(fake.route(PROJECT, "route-a").is_some() && fake.route(PROJECT, "route-b").is_some());
    assert_eq!(fake.requests_with("/compute/"), Vec::<String>::new());
}

#[test]
fn peer_fail_with_the_peer_route_already_gone_writes_nothing() {
    let fake = GcpFake::start();
    fake.put_route(PROJECT, VPC, "route-a", "10.99.0.0/16", "10.0.1.20", 100);
    let dir = tempfile::tempdir().expect("tempdir");
    let out = event(
        &config(&fake),
        dir.path(),
        EventKind::PeerFail,
        router_a("secondary"),
    );
    assert_eq!(out.outcome, Outcome::Ok, "{}", out.message);
    assert_eq!(
        out.message,
        "peer route route-b not in project proj-1, nothing to delete; route-a via 10.0.1.20 carries 10.99.0.0/16, no write"
    );
    assert!(writes(&fake).is_empty());
}

#[test]
fn revert_reinserts_a_missing_own_route_with_priority_zero() {
    let fake = GcpFake::start();
    fake.put_route(PROJECT, VPC, "route-b", "10.99.0.0/16", "10.0.1.10", 200);
    let dir = tempfile::tempdir().expect("tempdir");
    let node = node(
        3,
        "secondary",
        "route-a",
        "route-b",
        "10.0.1.20",
        "0",
        "10.99.0.0/16",
    );
    let out = event(&config(&fake), dir.path(), EventKind::Revert, node);
    assert_eq!(out.outcome, Outcome::Ok, "{}", out.message);
    assert!(
        out.message.starts_with("re-inserted route route-a (10.99.0.0/16 via 10.0.1.20, priority 0) in project proj-1 vpc vpc-1, "),
        "{}",
        out.message
    );
    assert_eq!(
        fake.state().inserted,
        vec![
            json!({"name": "route-a", "network": "projects/proj-1/global/networks/vpc-1",
            "destRange": "10.99.0.0/16", "nextHopIp": "10.0.1.20", "priority": 0})
        ]
    );
    let stored = fake.route(PROJECT, "route-a").expect("route-a re-inserted");
    assert_eq!(stored["priority"], 0);
    assert!(
        fake.route(PROJECT, "route-b").is_some(),
        "peer route touched"
    );
    assert_eq!(
        event_logs(dir.path()).len(),
        1,
        "a revert that wrote leaves a log"
    );
}

#[test]
fn revert_reports_differences_and_deletes_nothing() {
    let fake = GcpFake::start();
    fake.put_route(PROJECT, VPC, "route-a", "10.99.0.0/16", "10.0.1.99", 150);
    let dir = tempfile::tempdir().expect("tempdir");
    let out = event(
        &config(&fake),
        dir.path(),
        EventKind::Revert,
        router_a("primary"),
    );
    assert_eq!(out.outcome, Outcome::Warning, "{}", out.message);
    assert!(
        out.message
            .starts_with("Warning: route route-a differs from the node: "),
        "{}",
        out.message
    );
    assert!(
        out.message.contains("next hop 10.0.1.99 (node: 10.0.1.20)"),
        "{}",
        out.message
    );
    assert!(
        out.message.contains("priority 150 (node: 100)"),
        "{}",
        out.message
    );
    assert!(out.message.contains("nothing deleted"), "{}", out.message);
    assert!(
        writes(&fake).is_empty(),
        "revert wrote: {:?}",
        writes(&fake)
    );
    assert_eq!(
        fake.route(PROJECT, "route-a").expect("route-a")["nextHopIp"],
        "10.0.1.99"
    );
}

#[test]
fn revert_with_the_route_as_configured_writes_nothing_and_leaves_no_log() {
    let fake = GcpFake::start();
    seed_pair(&fake);
    let dir = tempfile::tempdir().expect("tempdir");
    let out = event(
        &config(&fake),
        dir.path(),
        EventKind::Revert,
        router_a("primary"),
    );
    assert_eq!(out.outcome, Outcome::Ok, "{}", out.message);
    assert_eq!(
        out.message,
        "route route-a present (10.99.0.0/16 via 10.0.1.20, priority 100), no write"
    );
    assert!(writes(&fake).is_empty());
    assert!(event_logs(dir.path()).is_empty());
}

#[test]
fn verify_inserts_and_deletes_an_ipv6_probe_route() {
    let fake = GcpFake::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let node = node(
        5,
        "primary",
        "route-a6",
        "route-b6",
        "2001:db8:1::20",
        "100",
        "2001:db8:99::/48",
    );
    let out = event(&config(&fake), dir.path(), EventKind::Verify, node);
    assert_eq!(out.outcome, Outcome::Ok, "{}", out.message);
    assert!(
        out.message.starts_with(
            "inserted and deleted probe route csr-ha-verify-route (2001:db8:99::/48 via 2001:db8:1::20, priority 65535)"
        ),
        "{}",
        out.message
    );
    assert_eq!(
        fake.state().inserted,
        vec![
            json!({"name": "csr-ha-verify-route", "network": "projects/proj-1/global/networks/vpc-1",
            "destRange": "2001:db8:99::/48", "nextHopIp": "2001:db8:1::20", "priority": 65535})
        ]
    );
    assert_eq!(
        writes(&fake),
        vec![
            "POST /compute/v1/projects/proj-1/global/routes",
            "DELETE /compute/v1/projects/proj-1/global/routes/csr-ha-verify-route",
        ]
    );
    assert!(fake.state().routes.is_empty(), "probe left behind");
}

#[test]
fn verify_by_either_router_never_undoes_a_peer_fail() {
    let fake = GcpFake::start();
    seed_pair(&fake);
    let dir = tempfile::tempdir().expect("tempdir");
    let failover = event(
        &config(&fake),
        dir.path(),
        EventKind::PeerFail,
        router_a("secondary"),
    );
    assert_eq!(failover.outcome, Outcome::Ok, "{}", failover.message);
    let router_b = util::with_params(
        router_a("primary"),
        &[
            (Param::RouteName, "route-b"),
            (Param::PeerRouteName, "route-a"),
            (Param::NextHopIp, "10.0.1.10"),
            (Param::HopPriority, "200"),
        ],
    );
    for node in [router_a("secondary"), router_b] {
        let out = event(&config(&fake), dir.path(), EventKind::Verify, node);
        assert_eq!(out.outcome, Outcome::Ok, "{}", out.message);
    }
    assert!(
        fake.route(PROJECT, "route-b").is_none(),
        "peer route is back"
    );
    assert!(fake.route(PROJECT, "route-a").is_some(), "own route gone");
    assert!(fake.route(PROJECT, "csr-ha-verify-route").is_none());
}

#[test]
fn verify_removes_its_own_stale_probe_but_never_a_foreign_route() {
    let fake = GcpFake::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let probe = "csr-ha-verify-route";
    fake.put_route(PROJECT, VPC, probe, "10.99.0.0/16", "10.0.1.20", 65535);
    let out = event(
        &config(&fake),
        dir.path(),
        EventKind::Verify,
        router_a("primary"),
    );
    assert_eq!(out.outcome, Outcome::Ok, "{}", out.message);
    assert_eq!(
        fake.requests_with("DELETE").len(),
        2,
        "stale probe and new probe deleted"
    );
    assert_eq!(
        fake.state().inserted.len(),
        2,
        "insert retried once after the 409"
    );
    assert!(fake.route(PROJECT, probe).is_none());

    fake.put_route(PROJECT, VPC, probe, "10.99.0.0/16", "10.0.1.77", 65535);
    let out = event(
        &config(&fake),
        dir.path(),
        EventKind::Verify,
        router_a("primary"),
    );
    assert_eq!(out.outcome, Outcome::Failed);
    assert!(
        out.message.starts_with("a route named csr-ha-verify-route exists in project proj-1 and is not this router's probe: not touched"),
        "{}",
        out.message
    );
    assert_eq!(
        fake.route(PROJECT, probe).expect("foreign route kept")["nextHopIp"],
        "10.0.1.77"
    );
    assert_eq!(
        fake.requests_with("DELETE").len(),
        2,
        "foreign route deleted"
    );
}

#[test]
fn an_operation_that_finishes_after_two_polls_is_waited_for() {
    let fake = GcpFake::start();
    seed_pair(&fake);
    fake.state().polls_until_done = 2;
    let dir = tempfile::tempdir().expect("tempdir");
    let out = event(
        &config(&fake),
        dir.path(),
        EventKind::PeerFail,
        router_a("secondary"),
    );
    assert_eq!(out.outcome, Outcome::Ok, "{}", out.message);
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
    let out = event(
        &config(&fake),
        dir.path(),
        EventKind::Revert,
        router_a("primary"),
    );
    assert_eq!(out.outcome, Outcome::Failed, "{}", out.message);
    assert!(
        out.message.starts_with(
            "cannot re-insert route route-a: GCP RESOURCE_NOT_FOUND: The resource 'projects/proj-1/global/networks/vpc-1' was not found (operation operation-1-insert)"
        ),
        "{}",
        out.message
    );
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
fn check_warns_about_a_missing_route_and_accepts_a_matching_one() {
    let fake = GcpFake::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run(
        &config(&fake),
        dir.path(),
        Action::Check,
        vec![router_a("primary")],
    )
    .remove(0);
    assert_eq!(out.outcome, Outcome::Warning);
    assert_eq!(
        out.message,
        "Warning: Route route-a not found in project proj-1 vpc vpc-1"
    );
    seed_pair(&fake);
    let out = run(
        &config(&fake),
        dir.path(),
        Action::Check,
        vec![router_a("primary")],
    )
    .remove(0);
    assert_eq!(out.outcome, Outcome::Ok, "{}", out.message);
    assert!(writes(&fake).is_empty());
    assert!(
        event_logs(dir.path()).is_empty(),
        "check leaves no event log"
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
    let out = event(
        &config(&fake),
        dir.path(),
        EventKind::PeerFail,
        router_a("secondary"),
    );
    assert_eq!(out.outcome, Outcome::Failed);
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
    let out = event(
        &config(&fake),
        dir.path(),
        EventKind::PeerFail,
        router_a("secondary"),
    );
    assert_eq!(out.outcome, Outcome::Ok, "{}", out.message);
    assert_eq!(
        fake.requests_with("GET /compute/v1/projects/proj-1/global/routes/route-b")
            .len(),
        2
    );
    assert_eq!(fake.requests_with("DELETE").len(), 2);
    assert!(fake.route(PROJECT, "route-b").is_none());
}

#[test]
fn a_token_is_fetched_once_per_process_and_renewed_after_a_401() {
    let fake = GcpFake::start();
    seed_pair(&fake);
    let dir = tempfile::tempdir().expect("tempdir");
    let nodes = vec![
        router_a("primary"),
        node(
            4,
            "primary",
            "route-c",
            "route-d",
            "10.0.1.20",
            "100",
            "10.98.0.0/16",
        ),
    ];
    let outs = run(
        &config(&fake),
        dir.path(),
        Action::Event(EventKind::Revert),
        nodes,
    );
    assert_eq!(outs.len(), 2);
    assert_eq!(fake.state().tokens_issued, 1, "token not cached");
    fake.state().access_token = "ya29.rotated".into();
    let out = event(
        &config(&fake),
        dir.path(),
        EventKind::Revert,
        router_a("primary"),
    );
    assert_eq!(out.outcome, Outcome::Ok, "{}", out.message);
    assert_eq!(fake.state().tokens_issued, 2, "token not renewed after 401");
}

#[test]
fn an_unreachable_metadata_server_fails_every_node_with_a_hint() {
    let fake = GcpFake::start();
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_host = dead.local_addr().expect("addr").to_string();
    drop(dead);
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
        assert_eq!(out.outcome, Outcome::Failed);
        assert!(
            out.message
                .starts_with("credentials: metadata server 127.0.0.1:"),
            "{}",
            out.message
        );
        assert!(
            out.message.contains("GOOGLE_APPLICATION_CREDENTIALS"),
            "{}",
            out.message
        );
    }
    assert!(fake.requests_with("/compute/").is_empty());
}

/// A fresh 2048-bit RSA key as PKCS#8 PEM, from the openssl CLI.
fn generate_key() -> String {
    let out = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ])
        .output()
        .expect("the JWT tests need the openssl command to generate an RSA key");
    assert!(
        out.status.success(),
        "openssl genpkey failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("PEM is text")
}

/// The PKCS#1 public key of a PKCS#8 PEM private key, for the fake to check signatures with.
fn public_key(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("PEM base64");
    let pair = ring::signature::RsaKeyPair::from_pkcs8(&der).expect("PKCS#8 RSA key");
    use ring::signature::KeyPair;
    pair.public_key().as_ref().to_vec()
}

fn write_key_file(dir: &Path, fake: &GcpFake, pem: &str) -> std::path::PathBuf {
    let path = dir.join("credentials.json");
    let key = json!({
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": "0123456789abcdef",
        "private_key": pem,
        "client_email": "csr-ha@proj-1.iam.gserviceaccount.test",
        "client_id": "1234567890",
        "token_uri": format!("{}/token", fake.url),
    });
    std::fs::write(&path, serde_json::to_string_pretty(&key).expect("json")).expect("write key");
    path
}

#[test]
fn a_key_file_gets_a_token_with_a_signed_jwt_that_never_leaks() {
    let fake = GcpFake::start();
    seed_pair(&fake);
    let dir = tempfile::tempdir().expect("tempdir");
    let pem = generate_key();
    fake.state().jwt = Some(gcp_fake::JwtCheck {
        public_key: public_key(&pem),
        client_email: "csr-ha@proj-1.iam.gserviceaccount.test".into(),
    });
    let key_path = write_key_file(dir.path(), &fake, &pem);
    // No metadata server: only the key file can produce a token.
    let config = GcpConfig {
        metadata_host: "127.0.0.1:9".into(),
        credentials: Some(key_path),
        ..config(&fake)
    };
    let out = event(
        &config,
        dir.path(),
        EventKind::PeerFail,
        router_a("secondary"),
    );
    assert_eq!(out.outcome, Outcome::Ok, "{}", out.message);
    assert!(fake.route(PROJECT, "route-b").is_none());

    let state = fake.state();
    assert_eq!(state.tokens_issued, 1);
    let claims = &state.jwt_claims[0];
    assert_eq!(claims["iss"], "csr-ha@proj-1.iam.gserviceaccount.test");
    assert_eq!(claims["aud"], format!("{}/token", fake.url));
    // The compute scope (its full URI is a cloud hostname, which stays out of tests/).
    let scope = claims["scope"].as_str().expect("scope claim");
    assert!(
        scope.starts_with("https://") && scope.ends_with("/auth/compute"),
        "{scope}"
    );
    let token = state.access_token.clone();
    drop(state);
    assert!(!out.message.contains(&token));
    let key_body = pem.lines().nth(1).expect("PEM body line");
    let logs = event_logs(dir.path());
    assert_eq!(logs.len(), 1);
    for (path, text) in files(dir.path()) {
        assert!(!text.contains(&token), "token in {path}");
        if !path.ends_with("credentials.json") {
            assert!(!text.contains("eyJ"), "a JWT in {path}");
            assert!(!text.contains(key_body), "private key in {path}");
        }
    }
}

#[test]
fn a_jwt_signed_with_the_wrong_key_is_refused_with_the_endpoints_words() {
    let fake = GcpFake::start();
    seed_pair(&fake);
    let dir = tempfile::tempdir().expect("tempdir");
    let pem = generate_key();
    fake.state().jwt = Some(gcp_fake::JwtCheck {
        public_key: public_key(&generate_key()),
        client_email: "csr-ha@proj-1.iam.gserviceaccount.test".into(),
    });
    let config = GcpConfig {
        credentials: Some(write_key_file(dir.path(), &fake, &pem)),
        ..config(&fake)
    };
    let out = event(
        &config,
        dir.path(),
        EventKind::PeerFail,
        router_a("secondary"),
    );
    assert_eq!(out.outcome, Outcome::Failed);
    assert!(
        out.message
            .starts_with("credentials: token endpoint http://127.0.0.1:"),
        "{}",
        out.message
    );
    assert!(
        out.message
            .ends_with("(HTTP 400): invalid_grant: Invalid JWT Signature."),
        "{}",
        out.message
    );
    assert!(!out.message.contains("eyJ"), "{}", out.message);
    assert!(fake.route(PROJECT, "route-b").is_some());
}

#[test]
fn a_key_file_that_is_not_a_key_is_reported_without_its_content() {
    let fake = GcpFake::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("credentials.json");
    std::fs::write(&path, r#"{"type":"service_account","client_email":"a@b","private_key":"-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWJ5dGVz\n-----END PRIVATE KEY-----\n"}"#)
        .expect("write");
    let config = GcpConfig {
        credentials: Some(path),
        ..config(&fake)
    };
    let out = event(&config, dir.path(), EventKind::Verify, router_a("primary"));
    assert_eq!(out.outcome, Outcome::Failed);
    assert!(
        out.message.contains(": credentials: private_key in "),
        "{}",
        out.message
    );
    assert!(!out.message.contains("c2VjcmV0"), "{}", out.message);
}

/// The same failover typed as a user would: the real server and handler, with the endpoints
/// given to the server process (and so to its handlers) through the environment.
#[test]
fn node_event_through_the_server_deletes_the_peer_route() {
    let fake = GcpFake::start();
    seed_pair(&fake);
    let ha = util::Ha::new();
    // The token cache goes beside replies/ on this private "tmpfs", removed with the test.
    let run_dir = ha.scratch().join("run");
    std::fs::create_dir_all(&run_dir).expect("mkdir");
    let mut ha = ha
        .with_env("XDG_RUNTIME_DIR", run_dir.to_str().expect("utf-8"))
        .with_env("CSR_HA_CLOUD", "gcp")
        .with_env("CSR_HA_GCP_COMPUTE_ENDPOINT", &fake.url)
        .with_env("GCE_METADATA_HOST", &fake.host)
        .with_env("GOOGLE_APPLICATION_CREDENTIALS", "")
        .with_env("NO_PROXY", "127.0.0.1");
    ha.start();
    let created = ha.ok(
        "create_node",
        &[
            "-i",
            "3",
            "-p",
            "gcp",
            "-g",
            PROJECT,
            "-v",
            VPC,
            "-a",
            "route-a",
            "-b",
            "route-b",
            "-n",
            "10.0.1.20",
            "-o",
            "100",
            "-r",
            "10.99.0.0/16",
            "-m",
            "secondary",
        ],
    );
    assert!(created.starts_with("200: "), "{created}");
    let missing = ha.run(
        "create_node",
        &[
            "-i",
            "4",
            "-p",
            "gcp",
            "-g",
            PROJECT,
            "-v",
            VPC,
            "-a",
            "route-x",
            "-b",
            "route-y",
            "-n",
            "10.0.1.20",
            "-o",
            "100",
            "-r",
            "10.98.0.0/16",
        ],
    );
    eprintln!(
        "SHOW {:?} {}",
        missing.status.code(),
        String::from_utf8_lossy(&missing.stdout)
    );
    let out = ha.ok("node_event", &["-i", "3", "-e", "peerFail"]);
    assert!(
        out.starts_with(
            "200: node 3 peerFail: deleted peer route route-b (10.99.0.0/16 via 10.0.1.10); route-a via 10.0.1.20 now carries it, "
        ),
        "{out}"
    );
    assert!(fake.route(PROJECT, "route-b").is_none());
    let again = ha.ok("node_event", &["-i", "3", "-e", "peerFail"]);
    assert!(again.contains("nothing to delete"), "{again}");
}

/// peerFail latency for one secondary node against the fake (GET peer route, DELETE, one
/// operation wait, GET own route), with a cached metadata token after the first run; the event
/// log write is timed apart. Not a pass/fail test: run
/// `cargo test --release --test gcp -- --ignored --nocapture bench_` and see BENCHMARKS.md.
#[test]
#[ignore]
fn bench_peer_fail_latency() {
    let fake = GcpFake::start();
    let config = config(&fake);
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut provider, mut logs) = (Vec::new(), Vec::new());
    for _ in 0..501 {
        seed_pair(&fake);
        let work = util::work(
            Action::Event(EventKind::PeerFail),
            Provider::Gcp,
            dir.path(),
            vec![router_a("secondary")],
        );
        let started = Instant::now();
        let mut log = EventLog::new(&work);
        let outcomes = gcp::run_with(&work, started + Duration::from_secs(20), &mut log, &config);
        provider.push(started.elapsed());
        let started = Instant::now();
        log.finish(&outcomes);
        logs.push(started.elapsed());
        assert_eq!(outcomes[0].outcome, Outcome::Ok, "{}", outcomes[0].message);
    }
    println!(
        "gcp peerFail, 1 node, fake on loopback, first run (metadata token fetched): provider {:?}",
        provider[0]
    );
    for (what, mut samples) in [
        ("provider", provider.split_off(1)),
        ("event log", logs.split_off(1)),
    ] {
        samples.sort();
        let pct = |p: usize| samples[(samples.len() * p / 100).min(samples.len() - 1)];
        let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
        println!(
            "gcp peerFail, 1 node, next {} runs, {what}: mean {mean:?}, p50 {:?}, p90 {:?}, p99 {:?}, max {:?}",
            samples.len(),
            pct(50),
            pct(90),
            pct(99),
            samples[samples.len() - 1]
        );
    }
}

#[test]
fn the_key_file_is_looked_for_in_the_ha_dir_then_home_then_the_variable() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ha = csr_ha::paths::HaDir::new(tmp.path().join("HA"));
    let home = tmp.path().join("home");
    std::fs::create_dir_all(ha.root()).expect("mkdir");
    std::fs::create_dir_all(&home).expect("mkdir");
    let variable = Some(tmp.path().join("from-variable.json"));
    let find = || GcpConfig::key_file(&ha, Some(&home), variable.clone());

    assert_eq!(find(), variable, "no file: the variable");
    assert_eq!(
        GcpConfig::key_file(&ha, Some(&home), None),
        None,
        "nothing: metadata"
    );
    std::fs::write(home.join("credentials.json"), "{}").expect("key");
    assert_eq!(
        find(),
        Some(home.join("credentials.json")),
        "the original's place"
    );
    std::fs::write(ha.root().join("credentials.json"), "{}").expect("key");
    assert_eq!(
        find(),
        Some(ha.root().join("credentials.json")),
        "the HA directory first"
    );
}

#[test]
fn the_handler_finds_the_key_in_home_credentials_json() {
    let fake = GcpFake::start();
    seed_pair(&fake);
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home");
    let ha = tmp.path().join("HA");
    std::fs::create_dir_all(&home).expect("mkdir");
    std::fs::create_dir_all(&ha).expect("mkdir");
    // Not a usable key: the error names the file, which shows where it was looked for.
    std::fs::write(home.join("credentials.json"), "{}").expect("key");
    let work = Work {
        deadline_ms: 5_000,
        ..util::work(
            Action::Event(EventKind::PeerFail),
            Provider::Gcp,
            &ha,
            vec![router_a("secondary")],
        )
    };
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ha_event_handler"))
        .env("HOME", &home)
        .env_remove("GOOGLE_APPLICATION_CREDENTIALS")
        .env("CSR_HA_GCP_COMPUTE_ENDPOINT", &fake.url)
        .env("GCE_METADATA_HOST", &fake.host)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(serde_json::to_string(&work).expect("json").as_bytes())?;
            child.wait_with_output()
        })
        .expect("run handler");
    let outcomes: Vec<NodeOutcome> = serde_json::from_slice(&out.stdout).expect("outcomes");
    assert_eq!(outcomes[0].outcome, Outcome::Failed, "{outcomes:?}");
    let expected = home.join("credentials.json");
    assert!(
        outcomes[0]
            .message
            .contains(&expected.display().to_string()),
        "{}",
        outcomes[0].message
    );
    assert!(fake.route(PROJECT, "route-b").is_some(), "nothing deleted");
}
