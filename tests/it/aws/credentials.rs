//! AWS credentials: static keys checked by moto's signature verification, role credentials from
//! a loopback IMDSv2 fake (cached, refreshed, fetched again when EC2 refuses them), the shared
//! credentials file, and no secret in any message or event file.
//!
//! Needs `scripts/setup_venv.sh` once (or `CSR_HA_MOTO_SERVER`).

use crate::util;

use aws_moto::{eni_of, Moto, Vpc, V4_ROUTE};
use csr_ha::cloud::aws::{AwsConfig, CredentialSources, Credentials, ImdsConfig};
use csr_ha::cloud::token_cache::TokenCache;
use csr_ha::event::EventKind;
use csr_ha::protocol::Status;
use csr_ha::work::{Action, NodeOutcome};
use std::path::Path;
use std::time::{Duration, Instant};
use util::aws_fakes::{FakeEc2, FakeImds, TokenReply};
use util::aws_moto;
use util::aws_run::{event, keys_config, node, one, primary_event, setup, ENI_A, ENI_B, RTB};

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
    assert_eq!(outcomes[0].outcome, Status::Ok, "{outcomes:?}");
    assert_eq!(outcomes[1].outcome, Status::Failed, "{outcomes:?}");
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
    let created = moto.boto3(
        "iam = client('iam')\n\
         iam.create_user(UserName='csr-ha')\n\
         iam.put_user_policy(UserName='csr-ha', PolicyName='all', PolicyDocument='{\"Version\":\"2012-10-17\",\
         \"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"*\",\"Resource\":\"*\"}]}')\n\
         k = iam.create_access_key(UserName='csr-ha')['AccessKey']\n\
         print(k['AccessKeyId'], k['SecretAccessKey'])",
    );
    let (id, secret) = created.split_once(' ').expect("key id and secret");
    let good = Credentials::new(id, secret, None);
    let vpc = Vpc::create(&moto.client(good.clone()));
    let dir = tempfile::tempdir().expect("temp dir");

    let wrong = Credentials::new(&good.access_key_id, "not-the-secret-at-all", None);
    let out = one(event(
        EventKind::PeerFail,
        &keys_config(&moto.endpoint, wrong),
        dir.path(),
        vec![node(1, &vpc.rtb, &vpc.eni_a, Some(V4_ROUTE), "primary")],
    ));
    util::assert_outcome(&out, Status::Failed);
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
    util::assert_outcome(&out, Status::Ok);
    assert_eq!(
        eni_of(&moto.client(good), &vpc.rtb, V4_ROUTE).as_deref(),
        Some(vpc.eni_a.as_str())
    );
}

fn imds_config(ec2: &FakeEc2, imds: &FakeImds, ttl: Duration) -> AwsConfig {
    AwsConfig {
        endpoint: Some(ec2.endpoint.clone()),
        credentials: CredentialSources {
            imds: Some(ImdsConfig {
                token_ttl: ttl,
                ..ImdsConfig::new(&imds.endpoint)
            }),
            cache: TokenCache::at(imds.cache.path().join("credentials")),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// An instance whose role credentials come from the IMDS fake, and an EC2 fake.
struct Instance {
    ec2: FakeEc2,
    imds: FakeImds,
    dir: tempfile::TempDir,
    config: AwsConfig,
}

impl Instance {
    /// Role credentials that expire at `expiration`; IMDS tokens asked for `token_ttl`.
    fn start(expiration: &str, token_ttl: Duration) -> Instance {
        let ec2 = FakeEc2::start(RTB, &[("10.99.0.0/16", ENI_B)]);
        let imds = FakeImds::start(expiration);
        let config = imds_config(&ec2, &imds, token_ttl);
        let dir = tempfile::tempdir().expect("temp dir");
        Instance {
            ec2,
            imds,
            dir,
            config,
        }
    }

    /// Node `n`, a primary on ENI A in [`RTB`], verifies its routes.
    fn verify(&self, n: u16) -> NodeOutcome {
        let node = node(n, RTB, ENI_A, None, "primary");
        one(event(
            EventKind::Verify,
            &self.config,
            self.dir.path(),
            vec![node],
        ))
    }

    /// [`Instance::verify`], which succeeds.
    fn verify_ok(&self, n: u16) -> NodeOutcome {
        let out = self.verify(n);
        util::assert_outcome(&out, Status::Ok);
        out
    }

    /// An instance that has run its first event: one IMDSv2 token (asked for `ttl`) and one
    /// credential fetch, for credentials expiring at `expiration`.
    fn after_first_event(expiration: &str, ttl: Duration) -> (Instance, NodeOutcome) {
        let instance = Instance::start(expiration, ttl);
        let out = instance.verify_ok(1);
        let imds = &instance.imds;
        assert_eq!((imds.tokens_issued(), imds.credential_fetches()), (1, 1));
        assert_eq!(imds.ttls(), [ttl.as_secs().to_string()]);
        (instance, out)
    }
}

/// The access key of EC2's last call.
fn last_key(ec2: &FakeEc2) -> Option<String> {
    ec2.calls().last().map(|c| c.access_key_id.clone())
}

#[test]
fn role_credentials_come_from_imdsv2_are_cached_and_refreshed() {
    let (instance, first) =
        Instance::after_first_event("2999-01-01T00:00:00Z", Duration::from_secs(21_600));
    let (ec2, imds) = (&instance.ec2, &instance.imds);
    let calls = ec2.calls();
    assert!(
        calls.iter().all(|c| c.access_key_id == "ASIAROLEKEY00001"),
        "{calls:?}"
    );
    assert!(calls.iter().all(|c| c.security_token.as_deref()
        == Some("role-session-token-1-do-not-leak")
        && c.token_signed));

    // A second event reuses both token and credentials.
    let second = instance.verify_ok(2);
    assert_eq!((imds.tokens_issued(), imds.credential_fetches()), (1, 1));

    // The token dies early (instance restarted, say) while the credentials are still cached:
    // nothing is fetched, so nothing notices.
    imds.revoke_tokens();
    instance.verify_ok(3);
    assert_eq!((imds.tokens_issued(), imds.credential_fetches()), (1, 1));
    let text = leftovers(&[first, second], instance.dir.path());
    assert!(!text.contains("do-not-leak"), "{text}");
}

#[test]
fn cached_role_credentials_that_ec2_refuses_are_fetched_again_once() {
    let instance = Instance::start("2999-01-01T00:00:00Z", Duration::from_secs(21_600));
    let (ec2, imds) = (&instance.ec2, &instance.imds);
    let verify = || instance.verify(1);
    assert_eq!(verify().outcome, Status::Ok);
    assert_eq!(imds.credential_fetches(), 1);
    // The instance's role was replaced: the cached keys are refused.
    ec2.fail_next(1, 401, "AuthFailure");
    let out = verify();
    util::assert_outcome(&out, Status::Ok);
    assert_eq!(imds.credential_fetches(), 2, "fetched again once");
    assert_eq!(last_key(ec2).as_deref(), Some("ASIAROLEKEY00002"));
    // Refused again right after a fresh fetch: reported, not fetched in a loop.
    ec2.fail_next(2, 401, "AuthFailure");
    let out = verify();
    util::assert_outcome(&out, Status::Failed);
    assert_eq!(imds.credential_fetches(), 3);
}

#[test]
fn expiring_role_credentials_and_tokens_are_fetched_again() {
    // Credentials that expire within the renewal margin are used but never cached.
    let (instance, first) =
        Instance::after_first_event("2000-01-01T00:00:00Z", Duration::from_secs(1));
    let (ec2, imds) = (&instance.ec2, &instance.imds);
    instance.verify_ok(2);
    assert_eq!(
        imds.credential_fetches(),
        2,
        "expiring credentials must be fetched again"
    );
    assert_eq!(last_key(ec2).as_deref(), Some("ASIAROLEKEY00002"));

    // A token the service refuses (401) is replaced once, transparently.
    imds.revoke_tokens();
    instance.verify_ok(3);
    assert_eq!((imds.tokens_issued(), imds.credential_fetches()), (2, 3));

    // A token past its TTL is not used at all.
    std::thread::sleep(Duration::from_millis(1_100));
    instance.verify_ok(4);
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
    let out = primary_event(EventKind::PeerFail, &config, dir.path(), 1);
    util::assert_outcome(&out, Status::Failed);
    util::assert_starts(&out, "credentials: no AWS credentials found: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY not set; no profile [default]");
    util::assert_says(&out, "404, no IAM role is attached to this instance");
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
    assert_eq!(run(&config).outcome, Status::Ok);
    assert_eq!(
        ec2.calls()
            .last()
            .map(|c| (c.access_key_id.clone(), c.security_token.clone())),
        Some(("AKIADEFAULTPROFILE01".into(), None))
    );
    config.credentials.profile = Some("ha".into());
    assert_eq!(run(&config).outcome, Status::Ok);
    assert_eq!(
        ec2.calls()
            .last()
            .map(|c| (c.access_key_id.clone(), c.security_token.clone())),
        Some(("AKIAHAPROFILE0000001".into(), Some("tok2".into())))
    );
    config.credentials.profile = Some("missing".into());
    let out = run(&config);
    util::assert_outcome_says(
        &out,
        Status::Failed,
        "profile [missing] (AWS_PROFILE) not found in",
    );
}

/// An instance one hop behind the caller: the token `PUT` is never answered (its reply's TTL
/// ran out), IMDSv1 allowed or not. Credentials expire soon, so every event reads metadata.
fn one_hop_away(v1: bool) -> Instance {
    let instance = Instance::start("2000-01-01T00:00:00Z", Duration::from_secs(21_600));
    instance.imds.token_reply(TokenReply::Never);
    instance.imds.allow_v1(v1);
    instance
}

fn timed(f: impl FnOnce() -> NodeOutcome) -> (NodeOutcome, Duration) {
    let started = Instant::now();
    let out = f();
    (out, started.elapsed())
}

#[test]
fn a_token_reply_that_never_comes_falls_back_to_imdsv1_and_later_events_do_not_wait() {
    let instance = one_hop_away(true);
    let imds = &instance.imds;
    let (out, took) = timed(|| instance.verify_ok(1));
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(2),
        "waits the token timeout (1 s) once: {took:?} {out:?}"
    );
    assert_eq!(imds.token_requests(), 1, "botocore's default: one try");
    assert_eq!(
        imds.tokenless_requests(),
        2,
        "role list and credentials via IMDSv1"
    );
    // The next handler finds the fallback in the shared cache: no token request, no wait.
    let (_, took) = timed(|| instance.verify_ok(2));
    assert!(took < Duration::from_millis(700), "{took:?}");
    assert_eq!(imds.token_requests(), 1);
    assert_eq!(imds.tokenless_requests(), 4);
}

#[test]
fn no_token_reply_and_imdsv1_refused_names_the_hop_limit_and_its_fix() {
    let instance = one_hop_away(false);
    let (out, took) = timed(|| instance.verify(1));
    util::assert_outcome(&out, Status::Failed);
    for words in [
        "did not arrive within 1 s",
        "HttpTokens=required",
        "hop limit (HttpPutResponseHopLimit) is probably 1 while guestshell is one hop behind the router",
        "aws ec2 modify-instance-metadata-options --instance-id <id> --http-put-response-hop-limit 2",
    ] {
        util::assert_says(&out, words);
    }
    assert!(took < Duration::from_secs(6), "{took:?}");
    assert_eq!(instance.ec2.calls().len(), 0);
    // Nothing remembered: the next event asks for a token again.
    instance.verify(2);
    assert_eq!(instance.imds.token_requests(), 2);
}

#[test]
fn imdsv1_disabled_by_the_variable_is_not_used() {
    let mut instance = one_hop_away(true);
    if let Some(imds) = instance.config.credentials.imds.as_mut() {
        imds.v1_disabled = true;
    }
    let out = instance.verify(1);
    util::assert_outcome(&out, Status::Failed);
    util::assert_says(
        &out,
        "IMDSv1 is disabled here (AWS_EC2_METADATA_V1_DISABLED=true)",
    );
    util::assert_says(&out, "--http-put-response-hop-limit 2");
    assert_eq!(instance.imds.tokenless_requests(), 0);
}

#[test]
fn a_refused_token_request_falls_back_and_a_401_on_imdsv1_forgets_the_fallback() {
    let instance = Instance::start("2000-01-01T00:00:00Z", Duration::from_secs(21_600));
    let imds = &instance.imds;
    imds.token_reply(TokenReply::Status(403));
    imds.allow_v1(true);
    let (_, took) = timed(|| instance.verify_ok(1));
    assert!(
        took < Duration::from_millis(700),
        "a 403 is no wait: {took:?}"
    );
    assert_eq!((imds.token_requests(), imds.tokenless_requests()), (1, 2));
    // The instance now requires IMDSv2 and answers tokens: the remembered fallback is refused,
    // forgotten, and a token fetched.
    imds.token_reply(TokenReply::Answer);
    imds.allow_v1(false);
    instance.verify_ok(2);
    assert_eq!((imds.token_requests(), imds.tokens_issued()), (2, 1));
    instance.verify_ok(3);
    assert_eq!(
        imds.token_requests(),
        2,
        "the token is cached, not the fallback"
    );
}

#[test]
fn a_dry_run_on_imdsv1_for_want_of_the_token_reply_warns_how_to_fix_it() {
    let instance = one_hop_away(true);
    let node = node(1, RTB, ENI_A, None, "primary");
    let work = util::work(
        Action::DryRun(EventKind::PeerFail),
        csr_ha::node::Provider::Aws,
        instance.dir.path(),
        vec![node.clone()],
    );
    let out = one(util::aws_run::run_with(&work, &instance.config));
    util::assert_outcome(&out, Status::Warning);
    util::assert_says(&out, "instance metadata read with IMDSv1");
    util::assert_says(&out, "--http-put-response-hop-limit 2");
    let work = util::work(
        Action::Check,
        csr_ha::node::Provider::Aws,
        instance.dir.path(),
        vec![node],
    );
    let out = one(util::aws_run::run_with(&work, &instance.config));
    util::assert_outcome(&out, Status::Warning);
    util::assert_says(&out, "instance metadata read with IMDSv1");
    // With a token, no such warning.
    let fine = Instance::start("2000-01-01T00:00:00Z", Duration::from_secs(21_600));
    let out = one(util::aws_run::run_with(&work, &fine.config));
    assert!(!out.message.contains("IMDSv1"), "{out:?}");
}
