//! GCP sign-in against the loopback fake's metadata server and OAuth token endpoint
//! (tests/fakes/src/gcp_fake): metadata tokens, service-account key files and their signed JWTs,
//! where the handler looks for the key, and no key or token in any message or log.

use crate::util;

use base64::Engine;
use csr_ha::cloud::gcp::GcpConfig;
use csr_ha::event::EventKind;
use csr_ha::node::Provider;
use csr_ha::protocol::Status;
use csr_ha::work::{Action, NodeOutcome, Work};
use serde_json::json;
use std::path::Path;
use util::gcp_fake::{self, GcpFake};
use util::gcp_run::{
    config, event, event_logs, event_on, files, node, peer_fail, router_a, run, seed_pair, seeded,
    started, PROJECT,
};

#[test]
fn a_token_is_fetched_once_per_process_and_renewed_after_a_401() {
    let (fake, dir) = seeded();
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
    let out = event_on(&fake, dir.path(), EventKind::Revert, router_a("primary"));
    util::assert_outcome(&out, Status::Ok);
    assert_eq!(fake.state().tokens_issued, 2, "token not renewed after 401");
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
    let (fake, dir) = seeded();
    let pem = util::gcp_run::generate_key();
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
    let out = peer_fail(&config, dir.path());
    util::assert_outcome(&out, Status::Ok);
    assert!(fake.route(PROJECT, "route-b").is_none());

    let state = fake.state();
    assert_eq!(state.tokens_issued, 1);
    let claims = &state.jwt_claims[0];
    assert_eq!(claims["iss"], "csr-ha@proj-1.iam.gserviceaccount.test");
    assert_eq!(claims["aud"], format!("{}/token", fake.url));
    // The compute scope, and read-only cloud-platform for a dry run's testIamPermissions (their
    // full URIs name a cloud hostname, which stays out of tests/).
    let scope = claims["scope"].as_str().expect("scope claim");
    let scopes: Vec<&str> = scope.split(' ').collect();
    assert_eq!(scopes.len(), 2, "{scope}");
    assert!(
        scopes[0].starts_with("https://") && scopes[0].ends_with("/auth/compute"),
        "{scope}"
    );
    assert!(
        scopes[1].starts_with("https://") && scopes[1].ends_with("/auth/cloud-platform.read-only"),
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
    let (fake, dir) = seeded();
    let pem = util::gcp_run::generate_key();
    fake.state().jwt = Some(gcp_fake::JwtCheck {
        public_key: public_key(&util::gcp_run::generate_key()),
        client_email: "csr-ha@proj-1.iam.gserviceaccount.test".into(),
    });
    let config = GcpConfig {
        credentials: Some(write_key_file(dir.path(), &fake, &pem)),
        ..config(&fake)
    };
    let out = peer_fail(&config, dir.path());
    util::assert_outcome(&out, Status::Failed);
    util::assert_starts(&out, "credentials: token endpoint http://127.0.0.1:");
    util::assert_ends(&out, "(HTTP 400): invalid_grant: Invalid JWT Signature.");
    assert!(!out.message.contains("eyJ"), "{}", out.message);
    assert!(fake.route(PROJECT, "route-b").is_some());
}

#[test]
fn a_key_file_that_is_not_a_key_is_reported_without_its_content() {
    let (fake, dir) = started();
    let path = dir.path().join("credentials.json");
    std::fs::write(&path, r#"{"type":"service_account","client_email":"a@b","private_key":"-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWJ5dGVz\n-----END PRIVATE KEY-----\n"}"#)
        .expect("write");
    let config = GcpConfig {
        credentials: Some(path),
        ..config(&fake)
    };
    let out = event(&config, dir.path(), EventKind::Verify, router_a("primary"));
    util::assert_outcome_says(&out, Status::Failed, ": credentials: private_key in ");
    assert!(!out.message.contains("c2VjcmV0"), "{}", out.message);
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
    let mut handler = util::handler();
    handler
        .env("HOME", &home)
        .env_remove("GOOGLE_APPLICATION_CREDENTIALS")
        .env("CSR_HA_GCP_COMPUTE_ENDPOINT", &fake.url)
        .env("GCE_METADATA_HOST", &fake.host);
    let out = util::run_handler(handler, &work);
    let outcomes: Vec<NodeOutcome> = serde_json::from_slice(&out.stdout).expect("outcomes");
    assert_eq!(outcomes[0].outcome, Status::Failed, "{outcomes:?}");
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
