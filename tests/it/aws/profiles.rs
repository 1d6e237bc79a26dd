//! AWS as botocore reads it: profiles in the config and credentials files, `role_arn` through
//! STS `AssumeRole` (moto's STS, which scopes what an assumed role creates to the role's
//! account, and the loopback fake for refusals and the cache), `AWS_PROFILE` and
//! `AWS_DEFAULT_PROFILE` as the server reads them.
//!
//! Needs `scripts/setup_venv.sh` once (or `CSR_HA_MOTO_SERVER`).

use crate::util;

use std::path::{Path, PathBuf};

use aws_moto::{eni_of, Moto, Vpc, V4_ROUTE};
use csr_ha::cloud::aws::{AwsConfig, CredentialSources, Credentials, ImdsConfig};
use csr_ha::cloud::token_cache::TokenCache;
use csr_ha::event::EventKind;
use csr_ha::protocol::Status;
use util::aws_fakes::{FakeEc2, FakeImds};
use util::aws_moto;
use util::aws_run::{event, node, one, primary_event, ENI_A, ENI_B, RTB};
use util::Ha;

/// The account the route tables belong to (a network account); moto's own is 123456789012.
const NETWORK_ACCOUNT: &str = "222222222222";
const ROLE_ARN: &str = "arn:aws:iam::222222222222:role/csr-ha-network";

/// Credentials of [`ROLE_ARN`] from moto's STS, got with boto3 as an administrator would.
fn network_account_keys(moto: &Moto) -> Credentials {
    let out = moto.boto3(&format!(
        "c = client('sts').assume_role(RoleArn='{ROLE_ARN}', RoleSessionName='admin')['Credentials']\n\
         print(c['AccessKeyId'], c['SecretAccessKey'], c['SessionToken'])"
    ));
    let parts: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(parts.len(), 3, "{out}");
    Credentials::new(parts[0], parts[1], Some(parts[2]))
}

/// A config file with `text` in a fresh directory.
fn config_file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("config");
    std::fs::write(&path, text).expect("write config");
    (dir, path)
}

/// Sources as a router with only an instance role (from `imds`) and the config file `config`
/// has them; STS and EC2 at `endpoint`.
fn instance_with_config(imds: &FakeImds, config: Option<&Path>, endpoint: &str) -> AwsConfig {
    AwsConfig {
        endpoint: Some(endpoint.to_string()),
        credentials: CredentialSources {
            shared_file: Some(PathBuf::from("/nonexistent/credentials")),
            config_file: config.map(Path::to_path_buf),
            sts_endpoint: Some(endpoint.to_string()),
            imds: Some(ImdsConfig::new(&imds.endpoint)),
            cache: TokenCache::at(imds.cache.path().join("credentials")),
            ..Default::default()
        },
        ..Default::default()
    }
}

#[test]
fn a_table_in_another_account_fails_over_through_role_arn_and_the_instance_role_alone_cannot() {
    let moto = aws_moto::shared();
    let network = moto.client(network_account_keys(moto));
    let vpc = Vpc::create(&network);
    let owner = network
        .call(
            "DescribeRouteTables",
            &[("RouteTableId.1", &vpc.rtb)],
            aws_moto::deadline(),
        )
        .expect("the network account sees its table");
    assert!(owner.contains(NETWORK_ACCOUNT), "{owner}");
    let imds = FakeImds::start("2999-01-01T00:00:00Z");
    let dir = tempfile::tempdir().expect("temp dir");
    let primary = || vec![node(1, &vpc.rtb, &vpc.eni_a, Some(V4_ROUTE), "primary")];

    // The instance role alone (moto's default account) cannot see the table.
    let alone = instance_with_config(&imds, None, &moto.endpoint);
    let out = one(event(EventKind::Verify, &alone, dir.path(), primary()));
    util::assert_outcome_says(&out, Status::Failed, "InvalidRouteTableID.NotFound");

    // role_arn + credential_source = Ec2InstanceMetadata: the instance role assumes the
    // network account's role, and the failover goes through.
    let (_files, config) = config_file(&format!(
        "[default]\nregion = us-east-1\nrole_arn = {ROLE_ARN}\ncredential_source = Ec2InstanceMetadata\n\
         role_session_name = router-a\n"
    ));
    let through_role = instance_with_config(&imds, Some(&config), &moto.endpoint);
    let out = one(event(
        EventKind::PeerFail,
        &through_role,
        dir.path(),
        primary(),
    ));
    util::assert_outcome(&out, Status::Ok);
    util::assert_starts(
        &out,
        &format!("{V4_ROUTE} in {} now via {}", vpc.rtb, vpc.eni_a),
    );
    assert_eq!(
        eni_of(&network, &vpc.rtb, V4_ROUTE).as_deref(),
        Some(vpc.eni_a.as_str())
    );
    // The role's credentials are in the shared cache for the next handlers.
    let kinds: Vec<String> = through_role
        .credentials
        .cache
        .entries()
        .into_iter()
        .map(|(kind, _)| kind)
        .collect();
    assert!(kinds.contains(&"aws-assumed-role".to_string()), "{kinds:?}");
    let out = one(event(
        EventKind::Verify,
        &through_role,
        dir.path(),
        primary(),
    ));
    util::assert_outcome(&out, Status::Ok);
    assert_eq!(imds.credential_fetches(), 1, "the instance role read once");
}

/// A router whose config names a role in profile `ha`, with keys in `[keys]`, STS and EC2 at
/// the fake.
fn role_with_keys(ec2: &FakeEc2, dir: &Path) -> AwsConfig {
    std::fs::write(
        dir.join("config"),
        format!(
            "[profile ha]\nrole_arn = {ROLE_ARN}\nsource_profile = keys\nexternal_id = ext-7\n\
             duration_seconds = 900\n"
        ),
    )
    .expect("config");
    std::fs::write(
        dir.join("credentials"),
        "[keys]\naws_access_key_id = AKIASOURCEKEYS000001\naws_secret_access_key = source-secret-do-not-leak\n",
    )
    .expect("credentials");
    AwsConfig {
        endpoint: Some(ec2.endpoint.clone()),
        credentials: CredentialSources {
            shared_file: Some(dir.join("credentials")),
            config_file: Some(dir.join("config")),
            profile: Some("ha".into()),
            sts_endpoint: Some(ec2.endpoint.clone()),
            cache: TokenCache::at(dir.join("cache")),
            ..Default::default()
        },
        ..Default::default()
    }
}

#[test]
fn assumed_credentials_sign_the_calls_and_are_kept_until_shortly_before_they_expire() {
    let ec2 = FakeEc2::start(RTB, &[("10.99.0.0/16", ENI_B)]);
    let dir = tempfile::tempdir().expect("temp dir");
    let config = role_with_keys(&ec2, dir.path());
    let out = primary_event(EventKind::Verify, &config, dir.path(), 1);
    util::assert_outcome(&out, Status::Ok);
    let calls = ec2.calls();
    let assume = &calls[0];
    assert_eq!(assume.action, "AssumeRole");
    assert_eq!(assume.access_key_id, "AKIASOURCEKEYS000001");
    for (param, value) in [
        ("RoleArn", ROLE_ARN),
        ("ExternalId", "ext-7"),
        ("DurationSeconds", "900"),
        ("Version", "2011-06-15"),
    ] {
        assert_eq!(
            assume.params.get(param).map(String::as_str),
            Some(value),
            "{param}"
        );
    }
    assert!(
        assume.params["RoleSessionName"].starts_with("csr-ha-"),
        "{assume:?}"
    );
    let ec2_calls = &calls[1..];
    assert!(
        ec2_calls
            .iter()
            .all(|c| c.access_key_id == "ASIAASSUMED000000001"
                && c.security_token.as_deref() == Some("assumed-token-1-do-not-leak")
                && c.token_signed),
        "{ec2_calls:?}"
    );
    // The next handler reuses them: no second AssumeRole.
    util::assert_outcome(
        &primary_event(EventKind::Verify, &config, dir.path(), 2),
        Status::Ok,
    );
    assert_eq!(ec2.assumed(), 1);
    // EC2 refuses them (the role's session was revoked): assumed again, once.
    ec2.fail_next(1, 401, "AuthFailure");
    util::assert_outcome(
        &primary_event(EventKind::Verify, &config, dir.path(), 3),
        Status::Ok,
    );
    assert_eq!(ec2.assumed(), 2);
    let events = std::fs::read_dir(dir.path().join("events")).expect("events");
    for entry in events.flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        assert!(!text.contains("do-not-leak"), "{text}");
    }
}

#[test]
fn a_role_sts_refuses_is_a_400_naming_the_role_at_once() {
    let ec2 = FakeEc2::start(RTB, &[("10.99.0.0/16", ENI_B)]);
    ec2.deny_assume_role();
    let dir = tempfile::tempdir().expect("temp dir");
    let config = role_with_keys(&ec2, dir.path());
    let out = primary_event(EventKind::PeerFail, &config, dir.path(), 1);
    util::assert_outcome(&out, Status::Failed);
    util::assert_starts(
        &out,
        &format!(
            "credentials: STS refused to let AKIASOURCEKEYS000001 assume role {ROLE_ARN} ([profile ha] in "
        ),
    );
    util::assert_says(
        &out,
        "AWS AccessDenied: User is not authorized to perform: sts:AssumeRole",
    );
    util::assert_says(&out, "trust policy must allow sts:AssumeRole");
    assert!(!out.message.contains("do-not-leak"), "{out:?}");
    assert_eq!(
        ec2.calls().len(),
        1,
        "refused once, not retried, no EC2 call"
    );
}

#[test]
fn credential_sources_a_router_cannot_use_are_a_400_naming_the_key() {
    let ec2 = FakeEc2::start(RTB, &[("10.99.0.0/16", ENI_B)]);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = role_with_keys(&ec2, dir.path());
    for (profile, says) in [
        (
            "[profile ha]\nrole_arn = arn:aws:iam::1:role/r\ncredential_source = EcsContainer\n",
            "credential_source = EcsContainer in [profile ha] in ",
        ),
        (
            "[profile ha]\ncredential_process = /usr/local/bin/keys\n",
            "credential_process in [profile ha] in ",
        ),
        (
            "[profile ha]\nsso_start_url = https://corp.awsapps.com/start\nsso_role_name = r\n",
            "in [profile ha] in ",
        ),
    ] {
        std::fs::write(dir.path().join("config"), profile).expect("config");
        let out = primary_event(EventKind::PeerFail, &config, dir.path(), 1);
        util::assert_outcome(&out, Status::Failed);
        util::assert_says(&out, says);
        util::assert_says(&out, "not supported by csr-ha");
    }
    assert!(ec2.calls().is_empty(), "{:?}", ec2.calls());
    // A profile missing from both files is named with both.
    config.credentials.profile = Some("nowhere".into());
    let out = primary_event(EventKind::PeerFail, &config, dir.path(), 1);
    util::assert_outcome_says(
        &out,
        Status::Failed,
        "profile [nowhere] (AWS_PROFILE) not found in",
    );
}

#[test]
fn the_server_reads_aws_default_profile_aws_profile_and_the_sts_endpoint_from_its_environment() {
    let ec2 = FakeEc2::start(RTB, &[("10.99.0.0/16", ENI_B)]);
    let files = tempfile::tempdir().expect("temp dir");
    let config = files.path().join("config");
    std::fs::write(
        &config,
        format!(
            "[profile ha]\naws_access_key_id = AKIACONFIGHA00000001\naws_secret_access_key = s1\n\
             [profile other]\naws_access_key_id = AKIACONFIGOTHER00001\naws_secret_access_key = s2\n\
             [profile network]\nrole_arn = {ROLE_ARN}\nsource_profile = ha\n"
        ),
    )
    .expect("config");
    let server = |env: &[(&str, &str)]| {
        let mut ha = util::aws_run::aws_env(Ha::new(), &ec2.endpoint)
            .without_env("AWS_ACCESS_KEY_ID")
            .without_env("AWS_SECRET_ACCESS_KEY")
            .without_env("AWS_PROFILE")
            .without_env("AWS_DEFAULT_PROFILE")
            .without_env("AWS_ENDPOINT_URL_STS")
            .with_env("AWS_CONFIG_FILE", &config.display().to_string());
        for (k, v) in env {
            ha = ha.with_env(k, v);
        }
        ha.start();
        ha.ok_line(&format!(
            "create_node -i 1 -t {RTB} -rg us-east-1 -n {ENI_A} -m primary"
        ));
        ha.ok("node_event", &["-i", "1", "-e", "verify"]);
        ec2.calls().last().map(|c| c.access_key_id.clone())
    };
    assert_eq!(
        server(&[("AWS_DEFAULT_PROFILE", "ha")]).as_deref(),
        Some("AKIACONFIGHA00000001")
    );
    assert_eq!(
        server(&[("AWS_DEFAULT_PROFILE", "ha"), ("AWS_PROFILE", "other")]).as_deref(),
        Some("AKIACONFIGOTHER00001"),
        "AWS_PROFILE first"
    );
    // A role: STS at AWS_ENDPOINT_URL_STS (EC2 at its own variable, the general one dead).
    let key = server(&[
        ("AWS_PROFILE", "network"),
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
        ("AWS_ENDPOINT_URL_EC2", &ec2.endpoint),
        ("AWS_ENDPOINT_URL_STS", &ec2.endpoint),
    ]);
    assert_eq!(key.as_deref(), Some("ASIAASSUMED000000001"));
    let assume = ec2.calls().into_iter().find(|c| c.action == "AssumeRole");
    assert_eq!(
        assume.map(|c| c.access_key_id).as_deref(),
        Some("AKIACONFIGHA00000001"),
        "source_profile's keys assume the role"
    );
}
