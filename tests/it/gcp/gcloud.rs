//! GCP credentials as the original's oauth2client found them after `~/credentials.json`:
//! `GOOGLE_APPLICATION_CREDENTIALS`, then gcloud's
//! `~/.config/gcloud/application_default_credentials.json`, then the metadata server; and
//! `authorized_user` credentials (what `gcloud auth application-default login` writes) through the
//! refresh-token grant at the file's `token_uri`. Against the loopback fake; HOME is a temporary
//! directory in every test.

use crate::util;

use std::path::{Path, PathBuf};

use csr_ha::cloud::gcp::{gcloud_file, GcpConfig};
use csr_ha::event::EventKind;
use csr_ha::node::Provider;
use csr_ha::protocol::Status;
use csr_ha::work::{Action, NodeOutcome, Work};
use serde_json::json;
use util::gcp_fake::{GcpFake, UserCheck};
use util::gcp_run::{config, files, peer_fail, router_a, seeded, PROJECT};

const CLIENT_ID: &str = "764086051850-6qr4p6gpi6hn506pt8ejuq83di341hur.apps.googleusercontent.test";
const CLIENT_SECRET: &str = "d-FL95Q19q7MQmFpd7hHD0Ty";
const REFRESH_TOKEN: &str = "1//0gRefresh-Token-Secret_abcdefghijklmnop";

fn accept_user(fake: &GcpFake) {
    fake.state().user = Some(UserCheck {
        client_id: CLIENT_ID.into(),
        client_secret: CLIENT_SECRET.into(),
        refresh_token: REFRESH_TOKEN.into(),
    });
}

/// `authorized_user` credentials as gcloud writes them, with `token_uri` pointing at the fake
/// (gcloud's own file has none: google-auth then uses Google's endpoint).
fn write_user_file(path: &Path, fake: &GcpFake, refresh_token: &str) {
    std::fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
    let creds = json!({
        "account": "",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "quota_project_id": PROJECT,
        "refresh_token": refresh_token,
        "type": "authorized_user",
        "token_uri": format!("{}/token", fake.url),
    });
    std::fs::write(path, serde_json::to_string_pretty(&creds).expect("json")).expect("write");
}

fn assert_no_secret(place: &str, text: &str) {
    for secret in [CLIENT_SECRET, REFRESH_TOKEN] {
        assert!(!text.contains(secret), "{place} holds a secret:\n{text}");
    }
}

#[test]
fn gclouds_file_comes_after_the_variable_and_before_the_metadata_server() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ha = csr_ha::paths::HaDir::new(tmp.path().join("HA"));
    let home = tmp.path().join("home");
    std::fs::create_dir_all(ha.root()).expect("mkdir");
    std::fs::create_dir_all(&home).expect("mkdir");
    let gcloud = gcloud_file(&home);
    assert_eq!(
        gcloud,
        home.join(".config/gcloud/application_default_credentials.json")
    );
    let variable = Some(tmp.path().join("from-variable.json"));

    assert_eq!(
        GcpConfig::key_file(&ha, Some(&home), None),
        None,
        "metadata"
    );
    std::fs::create_dir_all(gcloud.parent().expect("dir")).expect("mkdir");
    std::fs::write(&gcloud, "{}").expect("write");
    assert_eq!(
        GcpConfig::key_file(&ha, Some(&home), None),
        Some(gcloud.clone()),
        "gcloud's file before the metadata server"
    );
    assert_eq!(
        GcpConfig::key_file(&ha, Some(&home), variable.clone()),
        variable,
        "GOOGLE_APPLICATION_CREDENTIALS before gcloud's file"
    );
    std::fs::write(home.join("credentials.json"), "{}").expect("key");
    assert_eq!(
        GcpConfig::key_file(&ha, Some(&home), variable),
        Some(home.join("credentials.json")),
        "the original's ~/credentials.json first"
    );
}

#[test]
fn authorized_user_credentials_get_a_cached_token_by_the_refresh_grant() {
    let (fake, dir) = seeded();
    accept_user(&fake);
    // As GOOGLE_APPLICATION_CREDENTIALS would name it; no metadata server.
    let path = dir.path().join("user.json");
    write_user_file(&path, &fake, REFRESH_TOKEN);
    let config = GcpConfig {
        metadata_host: "127.0.0.1:9".into(),
        credentials: Some(path.clone()),
        ..config(&fake)
    };
    let out = peer_fail(&config, dir.path());
    util::assert_outcome(&out, Status::Ok);
    assert!(
        fake.route(PROJECT, "route-b").is_none(),
        "peer route deleted"
    );
    assert_eq!(fake.state().refresh_clients, vec![CLIENT_ID.to_string()]);
    assert_eq!(fake.state().tokens_issued, 1);

    // The next event reuses the cached token: no second grant.
    util::gcp_run::seed_pair(&fake);
    let out = peer_fail(&config, dir.path());
    util::assert_outcome(&out, Status::Ok);
    assert_eq!(fake.state().tokens_issued, 1, "token not cached");
    for (file, text) in files(dir.path()) {
        if !file.ends_with("user.json") {
            assert_no_secret(&file, &text);
        }
    }
}

#[test]
fn a_refused_refresh_token_is_reported_with_the_fix_and_no_secret() {
    let (fake, dir) = seeded();
    accept_user(&fake);
    let path = dir.path().join("user.json");
    write_user_file(&path, &fake, "1//0gRevoked-Refresh-Token");
    let config = GcpConfig {
        credentials: Some(path.clone()),
        ..config(&fake)
    };
    let out = peer_fail(&config, dir.path());
    util::assert_outcome(&out, Status::Failed);
    util::assert_starts(&out, "credentials: token endpoint http://127.0.0.1:");
    assert!(
        out.message.contains(&format!(
            "refused the authorized_user credentials of client {CLIENT_ID} from {}",
            path.display()
        )) && out.message.contains(
            "(HTTP 400): invalid_grant: Token has been expired or revoked.; run gcloud auth application-default login again"
        ),
        "{}",
        out.message
    );
    assert_no_secret("the outcome", &out.message);
    assert!(!out.message.contains("Revoked-Refresh"), "{}", out.message);
    assert!(fake.route(PROJECT, "route-b").is_some(), "nothing deleted");

    // A file without its refresh token names the field and the fix.
    std::fs::write(
        &path,
        json!({"type": "authorized_user", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
            .to_string(),
    )
    .expect("write");
    let out = peer_fail(&config, dir.path());
    util::assert_outcome(&out, Status::Failed);
    assert!(
        out.message.contains("(authorized_user) has no refresh_token; run gcloud auth application-default login again"),
        "{}",
        out.message
    );
    assert_no_secret("the outcome", &out.message);
}

/// The handler as the server runs it, with HOME holding only gcloud's file.
fn run_handler(home: &Path, ha: &Path, fake: &GcpFake) -> Vec<NodeOutcome> {
    let work = Work {
        deadline_ms: 5_000,
        ..util::work(
            Action::Event(EventKind::PeerFail),
            Provider::Gcp,
            ha,
            vec![router_a("secondary")],
        )
    };
    let run_dir = home.join("run");
    std::fs::create_dir_all(&run_dir).expect("mkdir");
    let mut handler = util::handler();
    handler
        .env_clear()
        .env("HOME", home)
        .env("XDG_RUNTIME_DIR", &run_dir)
        .env("RUST_LOG", "debug")
        .env("CSR_HA_GCP_COMPUTE_ENDPOINT", &fake.url)
        // No metadata server: the token can come only from gcloud's file.
        .env("GCE_METADATA_HOST", "127.0.0.1:9");
    let out = util::run_handler(handler, &work);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_no_secret("the handler's stderr", &stderr);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("outcomes: {e}\n{stderr}"))
}

#[test]
fn the_handler_fails_over_with_gclouds_authorized_user_file_in_home() {
    let fake = GcpFake::start();
    util::gcp_run::seed_pair(&fake);
    accept_user(&fake);
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home");
    let ha = tmp.path().join("HA");
    std::fs::create_dir_all(&ha).expect("mkdir");
    let gcloud: PathBuf = gcloud_file(&home);
    write_user_file(&gcloud, &fake, REFRESH_TOKEN);

    let outcomes = run_handler(&home, &ha, &fake);
    assert_eq!(outcomes[0].outcome, Status::Ok, "{outcomes:?}");
    assert!(
        fake.route(PROJECT, "route-b").is_none(),
        "peer route deleted"
    );
    assert_eq!(fake.state().refresh_clients, vec![CLIENT_ID.to_string()]);
    let files = files(&ha);
    assert!(
        files.iter().any(|(f, _)| f.contains("/events/")),
        "an event log"
    );
    for (file, text) in files {
        assert_no_secret(&file, &text);
        if file.contains("/events/") {
            assert!(
                text.contains(&format!(
                    "Credentials: credentials file {}",
                    gcloud.display()
                )),
                "{file}: {text}"
            );
        }
    }
}
