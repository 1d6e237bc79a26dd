//! The Azure provider against a stateful fake of ARM, IMDS and the AAD login endpoint on
//! 127.0.0.1 (tests/util/azure_fake.rs). Endpoints are passed in an [`AzureConfig`], never
//! through the environment, so the tests run in parallel safely.
mod util;

use std::time::{Duration, Instant};

use csr_ha::cloud::azure::{self, AzureConfig};
use csr_ha::cloud::token_cache::TokenCache;
use csr_ha::cloud::{Action, NodeOutcome, Outcome, Work};
use csr_ha::event::EventKind;
use csr_ha::event_log::EventLog;
use csr_ha::node::{Node, Param, Provider};
use util::azure_fake::{Fake, FakeRoute, Writes, GROUP, RESOURCE, SUB};

const OURS: &str = "10.0.1.20";
const PEER: &str = "10.0.1.10";

fn config(fake: &Fake) -> AzureConfig {
    AzureConfig {
        arm: fake.base.clone(),
        login: fake.base.clone(),
        imds: fake.base.clone(),
        resource: RESOURCE.to_string(),
        poll_interval: Duration::from_millis(20),
        cache: TokenCache::at(fake.cache.path().join("credentials")),
    }
}

/// An Azure node on `table` in the fake's subscription and group, next hop `next_hop`, and
/// `route` if given (all routes via the peer otherwise).
fn node(index: u16, table: &str, next_hop: &str, route: Option<&str>) -> Node {
    let mut params = vec![
        (Param::Cloud, "azure"),
        (Param::SubscriptionId, SUB),
        (Param::ResourceGroup, GROUP),
        (Param::RouteTableName, table),
        (Param::NextHop, next_hop),
    ];
    params.extend(route.map(|route| (Param::Route, route)));
    util::node(index, Provider::Azure, &params)
}

/// `node` logging in as an app registration instead of the managed identity.
fn with_app(node: Node, tenant: &str, app_id: &str, key: &str) -> Node {
    let app = [
        (Param::TenantId, tenant),
        (Param::AppId, app_id),
        (Param::AppKey, key),
    ];
    util::with_params(node, &app)
}

struct Run {
    outcomes: Vec<NodeOutcome>,
    dir: tempfile::TempDir,
}

fn run_with(config: AzureConfig, deadline_ms: u64, action: Action, nodes: Vec<Node>) -> Run {
    let dir = tempfile::tempdir().expect("temp dir");
    let work = Work {
        deadline_ms,
        ..util::work(action, Provider::Azure, dir.path(), nodes)
    };
    let deadline = Instant::now() + Duration::from_millis(work.deadline_ms);
    let mut log = EventLog::new(&work);
    let outcomes = azure::run_with(&work, deadline, &mut log, &config);
    log.finish(&outcomes);
    Run { outcomes, dir }
}

fn run(fake: &Fake, kind: EventKind, nodes: Vec<Node>) -> Run {
    run_with(
        config(fake),
        util::builders::DEADLINE_MS,
        Action::Event(kind),
        nodes,
    )
}

fn only(run: &Run) -> &NodeOutcome {
    assert_eq!(run.outcomes.len(), 1, "{:?}", run.outcomes);
    &run.outcomes[0]
}

fn puts(fake: &Fake) -> Vec<String> {
    fake.seen()
        .iter()
        .filter(|s| s.is_route_put())
        .map(|s| s.path().rsplit('/').next().unwrap_or("").to_string())
        .collect()
}

fn two_routes_and_internet(fake: &Fake, table: &str) {
    fake.add_table(
        table,
        vec![
            FakeRoute::appliance("to-dc", "10.99.0.0/16", PEER),
            FakeRoute::appliance("to-branch", "10.98.0.0/16", PEER),
            FakeRoute::other("default", "0.0.0.0/0", "Internet"),
        ],
    );
}

#[test]
fn peer_fail_moves_only_the_named_route_with_a_managed_identity() {
    let fake = Fake::start();
    two_routes_and_internet(&fake, "rt-a");
    let run = run(
        &fake,
        EventKind::PeerFail,
        vec![node(1, "rt-a", OURS, Some("10.99.0.0/16"))],
    );

    let out = only(&run);
    assert_eq!(out.outcome, Outcome::Ok, "{out:?}");
    assert!(
        out.message
            .contains("10.99.0.0/16 in rt-a now via 10.0.1.20 (was 10.0.1.10)"),
        "{}",
        out.message
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
    let run = run(
        &fake,
        EventKind::PeerFail,
        vec![node(2, "rt-all", OURS, None)],
    );

    let out = only(&run);
    assert_eq!(out.outcome, Outcome::Ok, "{out:?}");
    assert!(puts(&fake).is_empty(), "no route PUT in all-routes mode");
    let table_puts: Vec<_> = fake
        .seen()
        .into_iter()
        .filter(|s| s.is_table_put())
        .collect();
    assert_eq!(table_puts.len(), 1, "the table is written once");
    assert_eq!(table_puts[0].header("If-Match"), Some("W/\"0\""));
    assert!(
        out.message.contains("10.97.0.0/16 already via 10.0.1.20"),
        "{}",
        out.message
    );
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
    let run = run(
        &fake,
        EventKind::PeerFail,
        vec![node(3, "rt-v6", "2001:db8::20", Some("2001:db8:99::/48"))],
    );

    let out = only(&run);
    assert_eq!(out.outcome, Outcome::Ok, "{out:?}");
    assert!(
        out.message
            .contains("2001:db8:99::/48 in rt-v6 now via 2001:db8::20 (was 2001:db8::10)"),
        "{}",
        out.message
    );
    let v6 = fake.route("rt-v6", "v6");
    assert_eq!(v6.hop_ip.as_deref(), Some("2001:db8::20"));
    assert_eq!(v6.prefix, "2001:DB8:99::/48");
    assert_eq!(fake.route("rt-v6", "v4").hop_ip.as_deref(), Some(PEER));
}

#[test]
fn throttling_is_retried_after_retry_after() {
    let fake = Fake::start();
    two_routes_and_internet(&fake, "rt-429");
    fake.state().throttle = 1;
    let run = run(
        &fake,
        EventKind::PeerFail,
        vec![node(4, "rt-429", OURS, Some("10.98.0.0/16"))],
    );

    assert_eq!(only(&run).outcome, Outcome::Ok, "{:?}", run.outcomes);
    let gets: Vec<u16> = fake
        .seen()
        .iter()
        .filter(|s| s.is_table_get())
        .map(|s| s.status)
        .collect();
    assert_eq!(gets, [429, 200]);
    assert_eq!(
        fake.route("rt-429", "to-branch").hop_ip.as_deref(),
        Some(OURS)
    );
}

#[test]
fn a_busy_table_and_server_errors_are_retried() {
    let fake = Fake::start();
    two_routes_and_internet(&fake, "rt-busy");
    fake.state().busy = 1;
    fake.state().server_errors = 1;
    let run = run(
        &fake,
        EventKind::PeerFail,
        vec![node(5, "rt-busy", OURS, Some("10.99.0.0/16"))],
    );

    assert_eq!(only(&run).outcome, Outcome::Ok, "{:?}", run.outcomes);
    let statuses: Vec<u16> = fake
        .seen()
        .iter()
        .filter(|s| !s.is_imds())
        .map(|s| s.status)
        .collect();
    assert_eq!(statuses, [500, 200, 409, 200]);
    assert_eq!(fake.route("rt-busy", "to-dc").hop_ip.as_deref(), Some(OURS));
}

#[test]
fn an_async_write_is_followed_until_it_succeeds() {
    for writes in [Writes::AzureAsync, Writes::Location] {
        let fake = Fake::start();
        two_routes_and_internet(&fake, "rt-async");
        fake.state().writes = writes;
        let run = run(
            &fake,
            EventKind::PeerFail,
            vec![node(6, "rt-async", OURS, None)],
        );

        assert_eq!(
            only(&run).outcome,
            Outcome::Ok,
            "{writes:?}: {:?}",
            run.outcomes
        );
        assert_eq!(
            fake.route("rt-async", "to-dc").hop_ip.as_deref(),
            Some(OURS)
        );
        assert_eq!(
            fake.route("rt-async", "to-branch").hop_ip.as_deref(),
            Some(OURS)
        );
        // The one table write was polled exactly until it completed.
        let polls: Vec<u32> = fake.state().polls().into_values().collect();
        assert_eq!(polls, [2], "{writes:?}");
        assert!(
            fake.seen().iter().all(|s| s.status != 409),
            "{writes:?}: writes overlapped"
        );
    }
}

#[test]
fn a_failed_async_write_reports_the_operation_error() {
    let fake = Fake::start();
    two_routes_and_internet(&fake, "rt-fail");
    fake.state().writes = Writes::AzureAsync;
    fake.state().fail_operations = true;
    let run = run(
        &fake,
        EventKind::PeerFail,
        vec![node(7, "rt-fail", OURS, Some("10.99.0.0/16"))],
    );

    let out = only(&run);
    assert_eq!(out.outcome, Outcome::Failed);
    assert!(
        out.message.contains("Azure RouteConflict: Route conflicts"),
        "{}",
        out.message
    );
    assert_eq!(fake.route("rt-fail", "to-dc").hop_ip.as_deref(), Some(PEER));
}

#[test]
fn a_missing_table_is_named_in_the_error_and_a_warning_on_check() {
    let fake = Fake::start();
    let run = run(
        &fake,
        EventKind::PeerFail,
        vec![node(8, "rt-gone", OURS, None)],
    );
    let out = only(&run);
    assert_eq!(out.outcome, Outcome::Failed);
    assert!(
        out.message.contains("rt-gone") && out.message.contains("not found"),
        "{}",
        out.message
    );
    assert!(out.message.contains(GROUP), "{}", out.message);
    assert_eq!(
        fake.seen()
            .iter()
            .filter(|s| s.is_table_get())
            .map(|s| s.status)
            .collect::<Vec<_>>(),
        [404]
    );

    let check = run_with(
        config(&fake),
        20_000,
        Action::Check,
        vec![node(8, "rt-gone", OURS, None)],
    );
    assert_eq!(only(&check).outcome, Outcome::Warning);
    assert!(
        only(&check)
            .message
            .contains("Route Table rt-gone not found"),
        "{}",
        only(&check).message
    );
}

#[test]
fn authorization_failed_is_reported_with_azures_message() {
    let fake = Fake::start();
    two_routes_and_internet(&fake, "rt-403");
    fake.state().deny_writes = true;
    let run = run(
        &fake,
        EventKind::PeerFail,
        vec![node(9, "rt-403", OURS, Some("10.99.0.0/16"))],
    );

    let out = only(&run);
    assert_eq!(out.outcome, Outcome::Failed);
    assert!(
        out.message.starts_with("Azure AuthorizationFailed: "),
        "{}",
        out.message
    );
    assert!(
        out.message.contains("does not have authorization to perform action 'Microsoft.Network/routeTables/routes/write'"),
        "{}",
        out.message
    );
    assert_eq!(puts(&fake).len(), 1, "a 403 is not retried");
}

#[test]
fn verify_puts_the_route_back_unchanged() {
    let fake = Fake::start();
    two_routes_and_internet(&fake, "rt-verify");
    let before = fake.routes("rt-verify");
    let run = run(
        &fake,
        EventKind::Verify,
        vec![node(10, "rt-verify", OURS, Some("10.99.0.0/16"))],
    );

    let out = only(&run);
    assert_eq!(out.outcome, Outcome::Ok, "{out:?}");
    assert!(
        out.message
            .contains("10.99.0.0/16 in rt-verify verified via 10.0.1.10"),
        "{}",
        out.message
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
    let fake = Fake::start();
    two_routes_and_internet(&fake, "rt-race");
    // A peerFail of the other router lands between verify's read and its write.
    fake.change_after_read("rt-race", "to-dc", "10.0.1.30");
    let run = run(
        &fake,
        EventKind::Verify,
        vec![node(11, "rt-race", PEER, Some("10.99.0.0/16"))],
    );

    let out = only(&run);
    assert_eq!(out.outcome, Outcome::Warning, "{out:?}");
    assert!(
        out.message.contains(
            "10.99.0.0/16 in rt-race changed meanwhile (now via 10.0.1.30): not rewritten"
        ),
        "{}",
        out.message
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
    let run = run(
        &fake,
        EventKind::PeerFail,
        vec![node(12, "rt-big", OURS, None)],
    );

    let out = only(&run);
    assert_eq!(out.outcome, Outcome::Ok, "{out:?}");
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
    let fake = Fake::start();
    two_routes_and_internet(&fake, "rt-av");
    fake.change_after_read("rt-av", "to-branch", "10.0.1.30");
    let run = run(
        &fake,
        EventKind::Verify,
        vec![node(13, "rt-av", PEER, None)],
    );

    let out = only(&run);
    assert_eq!(out.outcome, Outcome::Warning, "{out:?}");
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
fn app_credentials_get_a_token_from_the_login_endpoint() {
    let fake = Fake::start();
    two_routes_and_internet(&fake, "rt-app");
    let key = "Qx8~abcdefGHIJKLmnopQRSTuvwxYZ0123456789";
    fake.state().app = Some(("tenant-1".into(), "app-1".into(), key.into()));
    let n = with_app(
        node(11, "rt-app", OURS, Some("10.99.0.0/16")),
        "tenant-1",
        "app-1",
        key,
    );
    let run = run(&fake, EventKind::PeerFail, vec![n]);

    assert_eq!(only(&run).outcome, Outcome::Ok, "{:?}", run.outcomes);
    let seen = fake.seen();
    assert!(
        !seen.iter().any(|s| s.is_imds()),
        "app credentials do not use the managed identity"
    );
    let login: Vec<_> = seen.iter().filter(|s| s.is_login()).collect();
    assert_eq!(login.len(), 1);
    assert_eq!(login[0].path(), "/tenant-1/oauth2/token");
    let token = fake.state().app_token.clone();
    for arm in seen.iter().filter(|s| !s.is_login()) {
        assert_eq!(
            arm.header("Authorization"),
            Some(format!("Bearer {token}").as_str())
        );
    }
    assert_eq!(fake.route("rt-app", "to-dc").hop_ip.as_deref(), Some(OURS));
}

#[test]
fn a_url_encoded_app_key_is_decoded_first() {
    let fake = Fake::start();
    two_routes_and_internet(&fake, "rt-enc");
    let decoded = "abc+def/ghi=jklmnopqrstuvwxyz0123456789ABCDEFG";
    let encoded = "abc%2Bdef%2Fghi%3Djklmnopqrstuvwxyz0123456789ABCDEFG";
    fake.state().app = Some(("t2".into(), "app-2".into(), decoded.into()));
    let n = with_app(
        node(12, "rt-enc", OURS, Some("10.99.0.0/16")),
        "t2",
        "app-2",
        encoded,
    );
    let run = run(&fake, EventKind::PeerFail, vec![n]);
    assert_eq!(only(&run).outcome, Outcome::Ok, "{:?}", run.outcomes);
}

#[test]
fn a_wrong_app_key_fails_with_the_login_error_and_never_the_key() {
    let fake = Fake::start();
    two_routes_and_internet(&fake, "rt-badkey");
    fake.state().app = Some((
        "t3".into(),
        "app-3".into(),
        "the-right-key-0123456789".into(),
    ));
    let wrong = "Wr0ng~Key.abcdefghijklmnopqrstuvwxyz";
    let n = with_app(node(13, "rt-badkey", OURS, None), "t3", "app-3", wrong);
    let run = run(&fake, EventKind::PeerFail, vec![n]);

    let out = only(&run);
    assert_eq!(out.outcome, Outcome::Failed);
    assert!(
        out.message
            .contains("invalid_client: AADSTS7000215: Invalid client secret provided"),
        "{}",
        out.message
    );
    assert!(
        out.message.contains("app-3") && !out.message.contains("Trace ID"),
        "{}",
        out.message
    );
    assert!(!out.message.contains(wrong));
    assert!(
        !fake.seen().iter().any(|s| s.is_table_get()),
        "no ARM call without a token"
    );
}

#[test]
fn a_vm_without_a_managed_identity_gets_an_actionable_error() {
    let fake = Fake::start();
    two_routes_and_internet(&fake, "rt-noid");
    fake.state().no_identity = true;
    let run = run(
        &fake,
        EventKind::PeerFail,
        vec![node(14, "rt-noid", OURS, None)],
    );
    let out = only(&run);
    assert_eq!(out.outcome, Outcome::Failed);
    assert!(
        out.message.contains("Identity not found") && out.message.contains("-a -d -k"),
        "{}",
        out.message
    );
}

#[test]
fn tokens_are_cached_and_replaced_when_arm_refuses_them() {
    let fake = Fake::start();
    two_routes_and_internet(&fake, "rt-cache");
    let first = run(
        &fake,
        EventKind::Verify,
        vec![node(15, "rt-cache", OURS, Some("10.99.0.0/16"))],
    );
    assert_eq!(only(&first).outcome, Outcome::Ok);
    let second = run(
        &fake,
        EventKind::Verify,
        vec![node(15, "rt-cache", OURS, Some("10.99.0.0/16"))],
    );
    assert_eq!(only(&second).outcome, Outcome::Ok);
    assert_eq!(
        fake.seen().iter().filter(|s| s.is_imds()).count(),
        1,
        "the second event reused the token"
    );

    // The identity's token is rotated: ARM refuses the cached one, a new one is fetched once.
    fake.state().imds_token = "rotated.token.value".into();
    let third = run(
        &fake,
        EventKind::Verify,
        vec![node(15, "rt-cache", OURS, Some("10.99.0.0/16"))],
    );
    assert_eq!(only(&third).outcome, Outcome::Ok, "{:?}", third.outcomes);
    assert_eq!(fake.seen().iter().filter(|s| s.is_imds()).count(), 2);
    assert_eq!(fake.seen().iter().filter(|s| s.status == 401).count(), 1);
}

#[test]
fn several_nodes_of_one_table_share_one_read() {
    let fake = Fake::start();
    two_routes_and_internet(&fake, "rt-group");
    let run = run(
        &fake,
        EventKind::PeerFail,
        vec![
            node(16, "rt-group", OURS, Some("10.99.0.0/16")),
            node(17, "rt-group", OURS, Some("10.98.0.0/16")),
        ],
    );
    assert!(
        run.outcomes.iter().all(|o| o.outcome == Outcome::Ok),
        "{:?}",
        run.outcomes
    );
    assert_eq!(fake.seen().iter().filter(|s| s.is_table_get()).count(), 1);
    assert_eq!(puts(&fake), ["to-dc", "to-branch"]);
}

/// The text column of hex-dump log lines (`[TRACE ureq_proto::util] 4854 5450 …  HTTP/1.1.200.OK.`),
/// joined, so a secret split over several dump lines is still found.
fn hex_dump_text(log: &str) -> String {
    log.lines()
        .filter(|l| l.contains("ureq_proto::util]"))
        .filter_map(|l| l.rsplit_once("  ").map(|(_, text)| text))
        .collect()
}

fn alnum(text: &str) -> String {
    text.chars().filter(char::is_ascii_alphanumeric).collect()
}

/// Every file under the HA directory and every outcome message, searched for secrets.
fn assert_no_secret(run: &Run, secrets: &[&str]) {
    let mut files = 0;
    let mut stack = vec![run.dir.path().to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            files += 1;
            let text =
                String::from_utf8_lossy(&std::fs::read(&path).expect("read file")).into_owned();
            let dumped = alnum(&hex_dump_text(&text));
            for secret in secrets {
                assert!(
                    !text.contains(secret),
                    "{} holds a secret:\n{text}",
                    path.display()
                );
                assert!(
                    !dumped.contains(&alnum(secret)),
                    "{} holds a secret in a hex dump:\n{text}",
                    path.display()
                );
            }
        }
    }
    assert!(files > 0, "the event wrote no file to search");
    for out in &run.outcomes {
        for secret in secrets {
            assert!(
                !out.message.contains(secret),
                "outcome holds a secret: {}",
                out.message
            );
            assert!(!format!("{out:?}").contains(secret));
        }
    }
}

#[test]
fn no_app_key_or_bearer_token_reaches_event_files_or_messages() {
    let fake = Fake::start();
    two_routes_and_internet(&fake, "rt-secret");
    let key = "S3cr3t~KeyThatMustNeverLeak.0123456789abc";
    fake.state().app = Some(("t4".into(), "app-4".into(), key.into()));
    let app_node = |route| with_app(node(18, "rt-secret", OURS, route), "t4", "app-4", key);

    let mut runs = vec![
        run(
            &fake,
            EventKind::PeerFail,
            vec![app_node(Some("10.99.0.0/16"))],
        ),
        run(&fake, EventKind::Verify, vec![app_node(None)]),
    ];
    fake.state().deny_writes = true;
    runs.push(run(
        &fake,
        EventKind::PeerFail,
        vec![app_node(Some("10.98.0.0/16"))],
    ));
    fake.state().deny_writes = false;
    // Wrong key: the login error must not echo what was sent either.
    let wrong = "Wr0ngS3cr3t~ThatMustNeverLeakEither.0123456789";
    runs.push(run(
        &fake,
        EventKind::PeerFail,
        vec![with_app(
            node(18, "rt-secret", OURS, None),
            "t4",
            "app-4",
            wrong,
        )],
    ));
    // A managed identity's token must not leak either.
    runs.push(run(
        &fake,
        EventKind::PeerFail,
        vec![node(19, "rt-secret", "10.0.1.30", None)],
    ));

    let (app_token, imds_token) = {
        let st = fake.state();
        (st.app_token.clone(), st.imds_token.clone())
    };
    assert!(fake
        .seen()
        .iter()
        .any(|s| s.header("Authorization") == Some(&format!("Bearer {app_token}"))));
    assert!(fake
        .seen()
        .iter()
        .any(|s| s.header("Authorization") == Some(&format!("Bearer {imds_token}"))));
    let outcomes: Vec<Outcome> = runs.iter().map(|r| only(r).outcome).collect();
    assert_eq!(
        outcomes,
        [
            Outcome::Ok,
            Outcome::Ok,
            Outcome::Failed,
            Outcome::Failed,
            Outcome::Ok
        ]
    );
    for run in &runs {
        assert_no_secret(run, &[key, wrong, &app_token, &imds_token]);
    }
}

#[test]
fn open_names_a_missing_parameter() {
    let fake = Fake::start();
    let mut n = node(20, "rt-x", OURS, None);
    n.remove(Param::ResourceGroup);
    let run = run(&fake, EventKind::PeerFail, vec![n]);
    assert_eq!(only(&run).outcome, Outcome::Failed);
    assert!(
        only(&run).message.contains("resourceGroup (-g)"),
        "{}",
        only(&run).message
    );
    assert!(fake.seen().is_empty());
}

/// The real entry point: `ha_event_handler` reads its endpoints from `CSR_HA_AZURE_*` (set on the
/// child only) and logs at trace level; no secret may reach its log, event files or output.
#[test]
fn the_handler_takes_endpoints_from_the_environment_and_logs_no_secret() {
    let fake = Fake::start();
    two_routes_and_internet(&fake, "rt-env");
    let key = "H4ndl3r~SecretKey.0123456789abcdefghijklmnop";
    fake.state().app = Some(("t5".into(), "app-5".into(), key.into()));
    fake.state().resource = String::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let work = util::work(
        Action::Event(EventKind::PeerFail),
        Provider::Azure,
        dir.path(),
        vec![with_app(node(21, "rt-env", OURS, None), "t5", "app-5", key)],
    );
    let run_dir = tempfile::tempdir().expect("temp dir");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ha_event_handler"))
        .env_clear()
        .env("HOME", dir.path())
        .env("CSR_HA_DIR", dir.path())
        // The credential cache (it holds the token, by design) goes to this private tmpfs.
        .env("XDG_RUNTIME_DIR", run_dir.path())
        .env("RUST_LOG", "trace")
        .env("CSR_HA_AZURE_ARM_ENDPOINT", &fake.base)
        .env("CSR_HA_AZURE_LOGIN_ENDPOINT", format!("{}/", fake.base))
        .env("CSR_HA_AZURE_IMDS_ENDPOINT", &fake.base)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start ha_event_handler");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(
                serde_json::to_string(&work)
                    .expect("work as JSON")
                    .as_bytes(),
            )
            .expect("write work");
    }
    let output = child.wait_with_output().expect("handler finishes");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    let outcomes: Vec<NodeOutcome> = serde_json::from_str(&stdout).expect("outcomes on stdout");
    assert_eq!(outcomes.len(), 1);
    assert_eq!(outcomes[0].outcome, Outcome::Ok, "{outcomes:?}");
    assert_eq!(fake.route("rt-env", "to-dc").hop_ip.as_deref(), Some(OURS));
    assert_eq!(fake.seen().iter().filter(|s| s.is_login()).count(), 1);

    let log = std::fs::read_to_string(dir.path().join("csr_ha.log")).expect("the handler logged");
    assert!(
        log.contains("azure:"),
        "trace logging reached the log file:\n{log}"
    );
    let token = fake.state().app_token.clone();
    for secret in [key, token.as_str()] {
        assert!(!stdout.contains(secret) && !stderr.contains(secret));
    }
    assert_no_secret(&Run { outcomes, dir }, &[key, &token]);
}

#[test]
fn throttling_past_the_deadline_fails_with_azures_code() {
    let fake = Fake::start();
    two_routes_and_internet(&fake, "rt-slow");
    fake.state().throttle = 100;
    let run = run_with(
        config(&fake),
        1_500,
        Action::Event(EventKind::PeerFail),
        vec![node(22, "rt-slow", OURS, None)],
    );
    let out = only(&run);
    assert_eq!(out.outcome, Outcome::Failed);
    assert!(
        out.message
            .starts_with("Azure SubscriptionRequestsThrottled: ")
            && out
                .message
                .ends_with("(still throttled when the event's deadline came)"),
        "{}",
        out.message
    );
    let gets = fake.seen().iter().filter(|s| s.is_table_get()).count();
    assert!(
        (1..=2).contains(&gets),
        "Retry-After: 1 honoured within 1.5 s: {gets} reads"
    );
}

#[test]
fn an_unreachable_arm_endpoint_is_named_in_the_error() {
    let fake = Fake::start();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("address").port();
    drop(closed);
    let config = AzureConfig {
        arm: format!("http://127.0.0.1:{port}"),
        ..config(&fake)
    };
    let run = run_with(
        config,
        800,
        Action::Event(EventKind::PeerFail),
        vec![node(23, "rt-x", OURS, None)],
    );
    let out = only(&run);
    assert_eq!(out.outcome, Outcome::Failed);
    assert!(
        out.message
            .contains("cannot reach Azure Resource Manager (reading Route Table rt-x)"),
        "{}",
        out.message
    );
    assert_eq!(fake.seen().iter().filter(|s| s.is_imds()).count(), 1);
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
            run.outcomes.iter().all(|o| o.outcome == Outcome::Ok),
            "{:?}",
            run.outcomes
        );
        (ms, fake.seen().len() - before)
    }

    // One node, one route (-r); every event moves the route (the next hop alternates).
    let fake = Fake::start();
    two_routes_and_internet(&fake, "rt-bench");
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
