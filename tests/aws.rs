//! The AWS provider against moto (a real EC2 Query API on loopback) and against loopback fakes
//! of what moto cannot do: the metadata service and throttling. Nothing here contacts AWS.
//!
//! Needs `scripts/setup_venv.sh` once (or `CSR_HA_MOTO_SERVER`).
mod util;

use util::aws_fakes;
use util::aws_moto;

use std::path::Path;
use std::time::Duration;

use aws_fakes::{FakeEc2, FakeImds};
use aws_moto::{eni_of, routes, tag, Moto, Vpc, V4_OTHER, V4_ROUTE, V6_ROUTE};
use csr_ha::cloud::aws::{self, AwsConfig, CredentialSources, Credentials, ImdsConfig};
use csr_ha::cloud::token_cache::TokenCache;
use csr_ha::cloud::{Action, NodeOutcome, Outcome, Work};
use csr_ha::event::EventKind;
use csr_ha::node::{Node, Param, Provider};

/// An AWS node in us-east-1: table `rtb`, this router's ENI `eni`, and `route` if given.
fn node(index: u16, rtb: &str, eni: &str, route: Option<&str>, mode: &str) -> Node {
    let mut params = vec![
        (Param::RouteTableId, rtb),
        (Param::Region, "us-east-1"),
        (Param::EniId, eni),
        (Param::Mode, mode),
    ];
    params.extend(route.map(|route| (Param::Route, route)));
    util::node(index, Provider::Aws, &params)
}

fn keys_config(endpoint: &str, keys: Credentials) -> AwsConfig {
    AwsConfig {
        endpoint: Some(endpoint.to_string()),
        credentials: CredentialSources {
            static_keys: Some(keys),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Runs `work` as a handler would: event log opened, provider run, logs written.
fn run_with(work: &Work, config: &AwsConfig) -> Vec<NodeOutcome> {
    let deadline = std::time::Instant::now() + Duration::from_millis(work.deadline_ms);
    let mut log = csr_ha::event_log::EventLog::new(work);
    let outcomes = aws::run_with(work, deadline, &mut log, config);
    log.finish(&outcomes);
    outcomes
}

/// Runs `kind` on `nodes` and returns the outcomes; event files go to `dir`.
fn event(kind: EventKind, config: &AwsConfig, dir: &Path, nodes: Vec<Node>) -> Vec<NodeOutcome> {
    run_with(
        &util::work(Action::Event(kind), Provider::Aws, dir, nodes),
        config,
    )
}

fn one(outcomes: Vec<NodeOutcome>) -> NodeOutcome {
    assert_eq!(outcomes.len(), 1, "{outcomes:?}");
    outcomes.into_iter().next().expect("one outcome")
}

struct Setup {
    moto: &'static Moto,
    config: AwsConfig,
    vpc: Vpc,
    dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let moto = aws_moto::shared();
    let vpc = Vpc::create(&moto.client(aws_moto::any_keys()));
    let config = keys_config(&moto.endpoint, aws_moto::any_keys());
    Setup {
        moto,
        config,
        vpc,
        dir: tempfile::tempdir().expect("temp dir"),
    }
}

impl Setup {
    fn eni_of(&self, destination: &str) -> Option<String> {
        eni_of(
            &self.moto.client(aws_moto::any_keys()),
            &self.vpc.rtb,
            destination,
        )
    }
    fn run(&self, kind: EventKind, nodes: Vec<Node>) -> Vec<NodeOutcome> {
        event(kind, &self.config, self.dir.path(), nodes)
    }
}

#[test]
fn peer_fail_revert_and_verify_move_one_route() {
    let s = setup();
    let (rtb, a, b) = (&s.vpc.rtb, &s.vpc.eni_a, &s.vpc.eni_b);
    let primary = node(1, rtb, a, Some(V4_ROUTE), "primary");
    let secondary = node(2, rtb, b, Some(V4_ROUTE), "secondary");

    let out = one(s.run(EventKind::PeerFail, vec![primary.clone()]));
    assert_eq!(out.outcome, Outcome::Ok, "{out:?}");
    assert!(
        out.message
            .starts_with(&format!("{V4_ROUTE} in {rtb} now via {a} (was {b})")),
        "{}",
        out.message
    );
    assert_eq!(s.eni_of(V4_ROUTE).as_deref(), Some(a.as_str()));
    assert_eq!(
        s.eni_of(V4_OTHER).as_deref(),
        Some(b.as_str()),
        "-r must move only its route"
    );

    let out = one(s.run(EventKind::PeerFail, vec![secondary.clone()]));
    assert_eq!(out.outcome, Outcome::Ok, "{out:?}");
    assert_eq!(s.eni_of(V4_ROUTE).as_deref(), Some(b.as_str()));

    // revert acts on primary nodes only.
    let out = one(s.run(EventKind::Revert, vec![primary.clone()]));
    assert_eq!(out.outcome, Outcome::Ok, "{out:?}");
    assert_eq!(s.eni_of(V4_ROUTE).as_deref(), Some(a.as_str()));
    let out = one(s.run(EventKind::Revert, vec![primary.clone()]));
    assert!(
        out.message.contains("already via") && out.message.contains("no write"),
        "{}",
        out.message
    );

    let out = one(s.run(EventKind::Verify, vec![primary]));
    assert_eq!(out.outcome, Outcome::Ok, "{out:?}");
    assert!(
        out.message
            .starts_with(&format!("{V4_ROUTE} in {rtb} verified via {a}")),
        "{}",
        out.message
    );
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
    assert_eq!(out.outcome, Outcome::Ok, "{out:?}");
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
        assert!(
            out.message
                .contains(&format!("{dest} in {} now via {}", s.vpc.rtb, s.vpc.eni_a)),
            "{}",
            out.message
        );
    }

    // verify rewrites each ENI route with its current ENI and nothing else.
    let out = one(s.run(
        EventKind::Verify,
        vec![node(4, &s.vpc.rtb, &s.vpc.eni_b, None, "secondary")],
    ));
    assert_eq!(out.outcome, Outcome::Ok, "{out:?}");
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
    assert_eq!(out.outcome, Outcome::Ok, "{out:?}");
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
    assert_eq!(out.outcome, Outcome::Failed);
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
    assert_eq!(checked.outcome, Outcome::Warning);
    assert!(
        checked.message.contains("InvalidRouteTableID.NotFound"),
        "{}",
        checked.message
    );
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
    assert_eq!(out.outcome, Outcome::Failed);
    assert_eq!(
        out.message,
        format!("Route 10.77.0.0/16 not found in Route Table {}", s.vpc.rtb)
    );
    assert_eq!(
        routes(&s.moto.client(aws_moto::any_keys()), &s.vpc.rtb),
        before
    );

    // The local route exists but points at no router.
    let out = one(s.run(
        EventKind::PeerFail,
        vec![node(
            6,
            &s.vpc.rtb,
            &s.vpc.eni_a,
            Some("10.0.0.0/16"),
            "primary",
        )],
    ));
    assert_eq!(out.outcome, Outcome::Failed);
    assert!(
        out.message.contains("does not point at a router"),
        "{}",
        out.message
    );
}

#[test]
fn nodes_sharing_a_table_are_served_by_one_read() {
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
        EventKind::PeerFail,
        &keys_config(&ec2.endpoint, aws_moto::any_keys()),
        dir.path(),
        nodes,
    );
    assert!(
        outcomes.iter().all(|o| o.outcome == Outcome::Ok),
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

/// Everything a handler leaves behind: outcome messages and every file under the HA directory.
fn leftovers(outcomes: &[NodeOutcome], dir: &Path) -> String {
    let mut text = format!("{outcomes:?}");
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                text.push_str(&std::fs::read_to_string(&path).unwrap_or_default());
            }
        }
    }
    text
}

#[test]
fn secrets_never_reach_messages_or_event_files() {
    let s = setup();
    let secret = "wJalrXUtnFEMI-K7MDENG-SECRET-MARKER";
    let token = "FwoGZXIvYXdzEXAMPLE-TOKEN-MARKER";
    let config = keys_config(
        &s.moto.endpoint,
        Credentials::new("AKIAMARKERKEY0000001", secret, Some(token)),
    );
    let mut outcomes = event(
        EventKind::PeerFail,
        &config,
        s.dir.path(),
        vec![node(9, &s.vpc.rtb, &s.vpc.eni_a, None, "primary")],
    );
    outcomes.extend(event(
        EventKind::Verify,
        &config,
        s.dir.path(),
        vec![node(10, "rtb-0abc1234", &s.vpc.eni_a, None, "primary")],
    ));
    assert_eq!(outcomes[0].outcome, Outcome::Ok, "{outcomes:?}");
    assert_eq!(outcomes[1].outcome, Outcome::Failed, "{outcomes:?}");
    let events = std::fs::read_dir(s.dir.path().join("events"))
        .expect("event files")
        .count();
    assert!(events >= 2, "expected event files, found {events}");
    let text = leftovers(&outcomes, s.dir.path());
    assert!(text.contains("AWS InvalidRouteTableID.NotFound"), "{text}");
    for needle in [secret, token, "Signature="] {
        assert!(!text.contains(needle), "{needle} leaked: {text}");
    }
    assert!(!format!("{config:?}").contains(secret) && !format!("{config:?}").contains(token));
}

#[test]
fn signatures_are_checked_and_a_wrong_secret_is_an_auth_failure() {
    // Three unauthenticated calls make a user allowed to do everything, then moto checks every
    // signature.
    let moto = Moto::start(&[("INITIAL_NO_AUTH_ACTION_COUNT", "3")]);
    let iam = moto
        .client(aws_moto::any_keys())
        .for_service("iam", "2010-05-08");
    let call = |action: &str, params: &[(&str, &str)]| {
        iam.call(action, params, aws_moto::deadline())
            .unwrap_or_else(|e| panic!("{action}: {e}"))
    };
    call("CreateUser", &[("UserName", "csr-ha")]);
    let policy =
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
    call(
        "PutUserPolicy",
        &[
            ("UserName", "csr-ha"),
            ("PolicyName", "all"),
            ("PolicyDocument", policy),
        ],
    );
    let created = call("CreateAccessKey", &[("UserName", "csr-ha")]);
    let good = Credentials::new(
        &tag(&created, "AccessKeyId"),
        &tag(&created, "SecretAccessKey"),
        None,
    );
    let vpc = Vpc::create(&moto.client(good.clone()));
    let dir = tempfile::tempdir().expect("temp dir");

    let wrong = Credentials::new(&good.access_key_id, "not-the-secret-at-all", None);
    let out = one(event(
        EventKind::PeerFail,
        &keys_config(&moto.endpoint, wrong),
        dir.path(),
        vec![node(1, &vpc.rtb, &vpc.eni_a, Some(V4_ROUTE), "primary")],
    ));
    assert_eq!(out.outcome, Outcome::Failed);
    assert_eq!(
        out.message,
        "AWS AuthFailure: AWS was not able to validate the provided access credentials"
    );
    assert_eq!(
        eni_of(&moto.client(good.clone()), &vpc.rtb, V4_ROUTE).as_deref(),
        Some(vpc.eni_b.as_str())
    );

    let out = one(event(
        EventKind::PeerFail,
        &keys_config(&moto.endpoint, good.clone()),
        dir.path(),
        vec![node(1, &vpc.rtb, &vpc.eni_a, Some(V4_ROUTE), "primary")],
    ));
    assert_eq!(out.outcome, Outcome::Ok, "{out:?}");
    assert_eq!(
        eni_of(&moto.client(good), &vpc.rtb, V4_ROUTE).as_deref(),
        Some(vpc.eni_a.as_str())
    );
}

const RTB: &str = "rtb-0fa1e0000000001";
const ENI_A: &str = "eni-0aaaaaaaaaaaaaaa1";
const ENI_B: &str = "eni-0bbbbbbbbbbbbbbb2";

fn imds_config(ec2: &FakeEc2, imds: &FakeImds, ttl: Duration) -> AwsConfig {
    AwsConfig {
        endpoint: Some(ec2.endpoint.clone()),
        credentials: CredentialSources {
            imds: Some(ImdsConfig {
                endpoint: imds.endpoint.clone(),
                token_ttl: ttl,
            }),
            cache: TokenCache::at(imds.cache.path().join("credentials")),
            ..Default::default()
        },
        ..Default::default()
    }
}

#[test]
fn throttling_is_retried_with_backoff_until_it_succeeds() {
    let ec2 = FakeEc2::start(RTB, &[("10.99.0.0/16", ENI_B)]);
    ec2.fail_next(2, 503, "RequestLimitExceeded");
    let dir = tempfile::tempdir().expect("temp dir");
    let config = keys_config(&ec2.endpoint, aws_moto::any_keys());
    let out = one(event(
        EventKind::PeerFail,
        &config,
        dir.path(),
        vec![node(1, RTB, ENI_A, None, "primary")],
    ));
    assert_eq!(out.outcome, Outcome::Ok, "{out:?}");
    let actions: Vec<String> = ec2.calls().into_iter().map(|c| c.action).collect();
    assert_eq!(
        actions,
        [
            "DescribeRouteTables",
            "DescribeRouteTables",
            "DescribeRouteTables",
            "ReplaceRoute"
        ]
    );
    assert_eq!(ec2.eni_of("10.99.0.0/16").as_deref(), Some(ENI_A));
}

#[test]
fn other_errors_are_not_retried() {
    let ec2 = FakeEc2::start(RTB, &[("10.99.0.0/16", ENI_B)]);
    ec2.fail_next(1, 403, "UnauthorizedOperation");
    let dir = tempfile::tempdir().expect("temp dir");
    let out = one(event(
        EventKind::Verify,
        &keys_config(&ec2.endpoint, aws_moto::any_keys()),
        dir.path(),
        vec![node(1, RTB, ENI_A, None, "primary")],
    ));
    assert_eq!(out.outcome, Outcome::Failed);
    assert_eq!(
        out.message,
        "AWS UnauthorizedOperation: Request limit exceeded."
    );
    assert_eq!(ec2.calls().len(), 1);
}

#[test]
fn an_unreachable_endpoint_is_retried_until_the_deadline() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let dir = tempfile::tempdir().expect("temp dir");
    let config = keys_config(&format!("http://127.0.0.1:{port}"), aws_moto::any_keys());
    let mut w = util::work(
        Action::Event(EventKind::PeerFail),
        Provider::Aws,
        dir.path(),
        vec![node(1, RTB, ENI_A, None, "primary")],
    );
    w.deadline_ms = 1_000;
    let out = one(run_with(&w, &config));
    assert_eq!(out.outcome, Outcome::Failed);
    assert!(
        out.message
            .starts_with(&format!("cannot reach AWS at http://127.0.0.1:{port}")),
        "{}",
        out.message
    );
    assert!(out.message.contains("gave up after"), "{}", out.message);
}

#[test]
fn role_credentials_come_from_imdsv2_are_cached_and_refreshed() {
    let ec2 = FakeEc2::start(RTB, &[("10.99.0.0/16", ENI_B)]);
    let imds = FakeImds::start("2999-01-01T00:00:00Z");
    let dir = tempfile::tempdir().expect("temp dir");
    let config = imds_config(&ec2, &imds, Duration::from_secs(21_600));
    let verify = |n: u16| {
        let out = one(event(
            EventKind::Verify,
            &config,
            dir.path(),
            vec![node(n, RTB, ENI_A, None, "primary")],
        ));
        assert_eq!(out.outcome, Outcome::Ok, "{out:?}");
        out
    };

    let first = verify(1);
    assert_eq!((imds.tokens_issued(), imds.credential_fetches()), (1, 1));
    assert_eq!(imds.ttls(), ["21600"]);
    let calls = ec2.calls();
    assert!(
        calls.iter().all(|c| c.access_key_id == "ASIAROLEKEY00001"),
        "{calls:?}"
    );
    assert!(calls.iter().all(|c| c.security_token.as_deref()
        == Some("role-session-token-1-do-not-leak")
        && c.token_signed));

    // A second event reuses both token and credentials.
    let second = verify(2);
    assert_eq!((imds.tokens_issued(), imds.credential_fetches()), (1, 1));

    // The token dies early (instance restarted, say) while the credentials are still cached:
    // nothing is fetched, so nothing notices.
    imds.revoke_tokens();
    verify(3);
    assert_eq!((imds.tokens_issued(), imds.credential_fetches()), (1, 1));
    let text = leftovers(&[first, second], dir.path());
    assert!(!text.contains("do-not-leak"), "{text}");
}

#[test]
fn cached_role_credentials_that_ec2_refuses_are_fetched_again_once() {
    let ec2 = FakeEc2::start(RTB, &[("10.99.0.0/16", ENI_B)]);
    let imds = FakeImds::start("2999-01-01T00:00:00Z");
    let dir = tempfile::tempdir().expect("temp dir");
    let config = imds_config(&ec2, &imds, Duration::from_secs(21_600));
    let verify = || {
        one(event(
            EventKind::Verify,
            &config,
            dir.path(),
            vec![node(1, RTB, ENI_A, None, "primary")],
        ))
    };
    assert_eq!(verify().outcome, Outcome::Ok);
    assert_eq!(imds.credential_fetches(), 1);
    // The instance's role was replaced: the cached keys are refused.
    ec2.fail_next(1, 401, "AuthFailure");
    let out = verify();
    assert_eq!(out.outcome, Outcome::Ok, "{out:?}");
    assert_eq!(imds.credential_fetches(), 2, "fetched again once");
    assert_eq!(
        ec2.calls()
            .last()
            .map(|c| c.access_key_id.clone())
            .as_deref(),
        Some("ASIAROLEKEY00002")
    );
    // Refused again right after a fresh fetch: reported, not fetched in a loop.
    ec2.fail_next(2, 401, "AuthFailure");
    let out = verify();
    assert_eq!(out.outcome, Outcome::Failed, "{out:?}");
    assert_eq!(imds.credential_fetches(), 3);
}

#[test]
fn expiring_role_credentials_and_tokens_are_fetched_again() {
    let ec2 = FakeEc2::start(RTB, &[("10.99.0.0/16", ENI_B)]);
    // Credentials that expire within the renewal margin are used but never cached.
    let imds = FakeImds::start("2000-01-01T00:00:00Z");
    let dir = tempfile::tempdir().expect("temp dir");
    let config = imds_config(&ec2, &imds, Duration::from_secs(1));
    let verify = |n: u16| {
        let out = one(event(
            EventKind::Verify,
            &config,
            dir.path(),
            vec![node(n, RTB, ENI_A, None, "primary")],
        ));
        assert_eq!(out.outcome, Outcome::Ok, "{out:?}");
        out
    };

    let first = verify(1);
    assert_eq!((imds.tokens_issued(), imds.credential_fetches()), (1, 1));
    assert_eq!(imds.ttls(), ["1"]);
    verify(2);
    assert_eq!(
        imds.credential_fetches(),
        2,
        "expiring credentials must be fetched again"
    );
    assert_eq!(
        ec2.calls()
            .last()
            .map(|c| c.access_key_id.clone())
            .as_deref(),
        Some("ASIAROLEKEY00002")
    );

    // A token the service refuses (401) is replaced once, transparently.
    imds.revoke_tokens();
    verify(3);
    assert_eq!((imds.tokens_issued(), imds.credential_fetches()), (2, 3));

    // A token past its TTL is not used at all.
    std::thread::sleep(Duration::from_millis(1_100));
    verify(4);
    assert_eq!((imds.tokens_issued(), imds.credential_fetches()), (3, 4));
    assert!(!format!("{first:?}").contains("do-not-leak"));
}

#[test]
fn an_instance_without_role_or_keys_says_where_it_looked() {
    let ec2 = FakeEc2::start(RTB, &[("10.99.0.0/16", ENI_B)]);
    let imds = FakeImds::start("2999-01-01T00:00:00Z");
    imds.remove_role();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = imds_config(&ec2, &imds, Duration::from_secs(60));
    config.credentials.shared_file = Some(dir.path().join("no-such-credentials"));
    let out = one(event(
        EventKind::PeerFail,
        &config,
        dir.path(),
        vec![node(1, RTB, ENI_A, None, "primary")],
    ));
    assert_eq!(out.outcome, Outcome::Failed);
    assert!(out.message.starts_with("credentials: no AWS credentials found: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY not set; no profile [default]"), "{}", out.message);
    assert!(
        out.message
            .contains("404, no IAM role is attached to this instance"),
        "{}",
        out.message
    );
    assert!(ec2.calls().is_empty());
}

#[test]
fn the_shared_credentials_file_and_profile_are_used() {
    let ec2 = FakeEc2::start(RTB, &[("10.99.0.0/16", ENI_B)]);
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("credentials");
    std::fs::write(
        &file,
        "[default]\naws_access_key_id = AKIADEFAULTPROFILE01\naws_secret_access_key = s1\n\
         [ha]\naws_access_key_id = AKIAHAPROFILE0000001\naws_secret_access_key = s2\naws_session_token = tok2\n",
    )
    .expect("write credentials");
    let mut config = AwsConfig {
        endpoint: Some(ec2.endpoint.clone()),
        credentials: CredentialSources {
            shared_file: Some(file),
            ..Default::default()
        },
        ..Default::default()
    };
    let run = |config: &AwsConfig| {
        one(event(
            EventKind::Verify,
            config,
            dir.path(),
            vec![node(1, RTB, ENI_A, None, "primary")],
        ))
    };
    assert_eq!(run(&config).outcome, Outcome::Ok);
    assert_eq!(
        ec2.calls()
            .last()
            .map(|c| (c.access_key_id.clone(), c.security_token.clone())),
        Some(("AKIADEFAULTPROFILE01".into(), None))
    );
    config.credentials.profile = Some("ha".into());
    assert_eq!(run(&config).outcome, Outcome::Ok);
    assert_eq!(
        ec2.calls()
            .last()
            .map(|c| (c.access_key_id.clone(), c.security_token.clone())),
        Some(("AKIAHAPROFILE0000001".into(), Some("tok2".into())))
    );
    config.credentials.profile = Some("missing".into());
    let out = run(&config);
    assert_eq!(out.outcome, Outcome::Failed);
    assert!(
        out.message
            .contains("profile [missing] (AWS_PROFILE) not found in"),
        "{}",
        out.message
    );
}
