//! The default Azure AD app, kept as the original kept it (`~/cloud/authMgr/aad_app_file`):
//! an upgraded router fails over with it with no step, `set_default_aad_app` proves an app with
//! Azure AD before keeping it, the order node app → default app → managed identity, and no key
//! in any output. HOME is a temporary directory in every test.

use crate::util;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use csr_ha::cloud::azure::AzureConfig;
use csr_ha::event::EventKind;
use csr_ha::node::Param;
use csr_ha::protocol::Status;
use csr_ha::work::Action;
use util::azure_fake::{Fake, FakeRoute, GROUP, SUB};
use util::azure_run::{config, fake_with_table, node, only, run_with, OURS, PEER};
use util::Ha;

const APP: &str = "0a1b2c3d-1111-2222-3333-444455556666";
const TENANT: &str = "7e8f9a0b-1111-2222-3333-444455556666";
const KEY: &str = "Def~AultKey.0123456789abcdefghijklmnopqrs";

fn aad_app_file(home: &Path) -> PathBuf {
    home.join("cloud/authMgr/aad_app_file")
}

/// The file as the original's `auth_mgr.write_table_to_file` left it: `json.dumps`, default umask.
fn write_original_file(home: &Path, cloud: &str, app: &str, tenant: &str, key: &str) {
    let path = aad_app_file(home);
    std::fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
    std::fs::write(
        &path,
        format!(
            r#"{{"cloud": "{cloud}", "app_id": "{app}", "tenant_id": "{tenant}", "app_key": "{key}"}}"#
        ),
    )
    .expect("write aad_app_file");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
}

/// A server for Azure against `fake`, with HOME = `home`.
fn azure_ha(fake: &Fake, home: &Path) -> Ha {
    Ha::new()
        .with_private_runtime_dir()
        .with_env("HOME", home.to_str().expect("utf-8"))
        .with_env("CSR_HA_CLOUD", "azure")
        .with_env("CSR_HA_AZURE_ARM_ENDPOINT", &fake.base)
        .with_env("CSR_HA_AZURE_LOGIN_ENDPOINT", &fake.base)
        .with_env("CSR_HA_AZURE_IMDS_ENDPOINT", &fake.base)
}

fn client_ids(fake: &Fake) -> Vec<String> {
    fake.seen()
        .iter()
        .filter(|s| s.is_login())
        .filter_map(|s| util::loopback::form(&s.body).get("client_id").cloned())
        .collect()
}

fn assert_no_key(place: &str, text: &str) {
    assert!(!text.contains(KEY), "{place} shows the key:\n{text}");
}

#[test]
fn an_upgraded_router_with_the_original_aad_app_file_fails_over_with_that_app() {
    let fake = Fake::start();
    fake.add_table(
        "rt-up",
        vec![FakeRoute::appliance("to-dc", "10.99.0.0/16", PEER)],
    );
    {
        let mut st = fake.state();
        st.resource = String::new();
        st.app = Some((TENANT.into(), APP.into(), KEY.into()));
        // A VM without a managed identity: only the app can sign in.
        st.no_identity = true;
    }
    let home = tempfile::tempdir().expect("home");
    write_original_file(home.path(), "azure", APP, TENANT, KEY);
    let mut ha = azure_ha(&fake, home.path());
    ha.start();
    ha.ok(
        "create_node",
        &[
            "-i",
            "1",
            "-p",
            "azure",
            "-s",
            SUB,
            "-g",
            GROUP,
            "-t",
            "rt-up",
            "-n",
            OURS,
            "-r",
            "10.99.0.0/16",
        ],
    );
    let out = ha.ok("node_event", &["-i", "1", "-e", "peerFail"]);
    assert!(out.starts_with("200: node 1 peerFail"), "{out}");
    assert_eq!(fake.route("rt-up", "to-dc").hop_ip.as_deref(), Some(OURS));
    let ids = client_ids(&fake);
    assert!(!ids.is_empty() && ids.iter().all(|id| id == APP), "{ids:?}");
    assert!(
        !fake.seen().iter().any(|s| s.is_imds()),
        "the managed identity was asked"
    );
    let events: Vec<String> = std::fs::read_dir(ha.path("events"))
        .expect("events")
        .flatten()
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect();
    assert!(
        events.iter().any(|text| text.contains(&format!(
            "Credentials: the default Azure AD app {APP} in tenant {TENANT}"
        ))),
        "{events:?}"
    );
    for text in &events {
        assert_no_key("an event log", text);
    }
    let mode = std::fs::metadata(aad_app_file(home.path()))
        .expect("file kept")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "made owner-only");

    let status = ha.ok("ha_api", &["-c", "status"]);
    assert!(
        status.contains(&format!(
            "credential the default Azure AD app {APP} in tenant {TENANT}"
        )),
        "{status}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ha.ok("ha_api", &["-c", "status", "--json"])).expect("json");
    let credential = json["nodes"][0]["credential"].as_str().expect("credential");
    assert!(credential.contains(APP), "{credential}");
    let shown = ha.ok("show_auth_applications", &[]);
    assert!(
        shown.starts_with("200: Authentication applications")
            && shown.contains(&format!(
                "Default AAD application: app {APP} in tenant {TENANT} (cloud azure)"
            ))
            && shown.contains("  node 1: the default Azure AD app"),
        "{shown}"
    );
    for (place, text) in [("status", &status), ("show_auth_applications", &shown)] {
        assert_no_key(place, text);
    }
    assert_no_key(
        "csr_ha.log",
        &std::fs::read_to_string(ha.path("csr_ha.log")).unwrap_or_default(),
    );
}

#[test]
fn set_default_aad_app_keeps_only_an_app_azure_ad_accepts() {
    let fake = Fake::start();
    {
        let mut st = fake.state();
        st.resource = String::new();
        st.app = Some((TENANT.into(), APP.into(), KEY.into()));
    }
    let home = tempfile::tempdir().expect("home");
    let ha = azure_ha(&fake, home.path());
    let path = aad_app_file(home.path());
    let set = |key: &str| {
        ha.run(
            "set_default_aad_app",
            &["-p", "azure", "-a", APP, "-d", TENANT, "-k", key],
        )
    };

    let refused = set("wrong-key");
    let text = String::from_utf8_lossy(&refused.stdout).into_owned();
    assert_eq!(refused.status.code(), Some(1), "{text}");
    assert!(
        text.starts_with(&format!(
            "400: Azure AD gave no token to app {APP} in tenant {TENANT}"
        )) && text.contains("invalid_client")
            && text.contains("the default AAD application is unchanged"),
        "{text}"
    );
    assert!(!path.exists(), "a refused app is not kept");

    let done = ha.ok(
        "set_default_aad_app",
        &["-p", "azure", "-a", APP, "-d", TENANT, "-k", KEY],
    );
    assert!(
        done.starts_with("200: Default AAD application set: app "),
        "{done}"
    );
    assert_no_key("set_default_aad_app", &done);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("file")).expect("json");
    assert_eq!(
        json,
        serde_json::json!({"cloud": "azure", "app_id": APP, "tenant_id": TENANT, "app_key": KEY})
    );
    let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(client_ids(&fake), vec![APP.to_string(), APP.to_string()]);

    // A refused app later leaves the kept one as it was.
    let before = std::fs::read(&path).expect("file");
    let refused = set("another-wrong-key");
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(std::fs::read(&path).expect("file"), before);

    // Every flag is required, as the original's argparse had it.
    let out = ha.expect(2, "set_default_aad_app", &["-p", "azure", "-a", APP]);
    assert!(
        out.contains("required: -d (tenantId), -k (appKey)"),
        "{out}"
    );
    let out = ha.expect(
        2,
        "set_default_aad_app",
        &["-p", "aws", "-a", APP, "-d", TENANT, "-k", KEY],
    );
    assert!(out.starts_with("400: -p"), "{out}");

    // A file set by hand that is not usable is a warning naming the file and the field.
    std::fs::write(
        &path,
        r#"{"cloud": "azure", "app_id": "a", "tenant_id": "t"}"#,
    )
    .expect("write");
    let shown = ha.ok("show_auth_applications", &[]);
    assert!(
        shown.starts_with("199: Warning: credentials: the default Azure AD app file ")
            && shown.contains("aad_app_file has no app_key"),
        "{shown}"
    );

    let cleared = ha.ok("clear_default_aad_app", &[]);
    assert!(
        cleared.starts_with("200: Default AAD application cleared"),
        "{cleared}"
    );
    assert!(!path.exists());
    let again = ha.ok("clear_default_aad_app", &[]);
    assert!(
        again.starts_with("200: No default AAD application was set"),
        "{again}"
    );
    let shown = ha.ok("show_auth_applications", &[]);
    assert!(
        shown.contains("No default AAD application is configured"),
        "{shown}"
    );
}

#[test]
fn a_node_uses_its_own_app_then_the_default_app_then_the_managed_identity() {
    let fake = fake_with_table("rt-order");
    fake.state().app = Some((TENANT.into(), APP.into(), KEY.into()));
    let home = tempfile::tempdir().expect("home");
    let path = aad_app_file(home.path());
    let with_default = AzureConfig {
        default_app: Some(path.clone()),
        ..config(&fake)
    };
    let peer_fail = |config: AzureConfig, n| {
        run_with(config, 5_000, Action::Event(EventKind::PeerFail), vec![n])
    };
    let plain = || node(31, "rt-order", OURS, Some("10.99.0.0/16"));

    // No file: the managed identity.
    let run = peer_fail(with_default.clone(), plain());
    assert_eq!(only(&run).outcome, Status::Ok, "{:?}", run.outcomes);
    assert!(fake.seen().iter().any(|s| s.is_imds()));
    assert!(client_ids(&fake).is_empty());

    // The default app, before the managed identity.
    write_original_file(home.path(), "azure", APP, TENANT, KEY);
    let imds_before = fake.seen().iter().filter(|s| s.is_imds()).count();
    let run = peer_fail(with_default.clone(), plain());
    assert_eq!(only(&run).outcome, Status::Ok, "{:?}", run.outcomes);
    assert_eq!(client_ids(&fake), vec![APP.to_string()]);
    assert_eq!(
        fake.seen().iter().filter(|s| s.is_imds()).count(),
        imds_before
    );

    // The node's own app, before the default app (whose app the fake does not know).
    write_original_file(home.path(), "azure", "unknown-app", TENANT, "unknown-key");
    let own = util::with_params(
        plain(),
        &[
            (Param::AppId, APP),
            (Param::TenantId, TENANT),
            (Param::AppKey, KEY),
        ],
    );
    let run = peer_fail(with_default.clone(), own);
    assert_eq!(only(&run).outcome, Status::Ok, "{:?}", run.outcomes);
    // Same app, tenant and key as the default app had: its cached token serves.
    assert_eq!(client_ids(&fake), vec![APP.to_string()]);

    // A default app the login endpoint refuses is reported as the default app, never skipped.
    let run = peer_fail(with_default.clone(), plain());
    let out = only(&run);
    assert_eq!(out.outcome, Status::Failed);
    assert!(
        out.message.contains("the default Azure AD app unknown-app")
            && out.message.contains("set_default_aad_app"),
        "{}",
        out.message
    );
    assert!(!out.message.contains("unknown-key"), "{}", out.message);

    // A default app of another cloud is refused for this node, naming both.
    write_original_file(home.path(), "azchina", APP, TENANT, KEY);
    let run = peer_fail(with_default.clone(), plain());
    let out = only(&run);
    assert_eq!(out.outcome, Status::Failed);
    assert!(
        out.message
            .contains("is for cloud azchina, and this node's -p is azure"),
        "{}",
        out.message
    );

    // A file that is not the original's format names the file and the field.
    std::fs::write(&path, r#"{"cloud": "azure", "app_id": "a"}"#).expect("write");
    let run = peer_fail(with_default, plain());
    let out = only(&run);
    assert_eq!(out.outcome, Status::Failed);
    assert!(
        out.message.contains("aad_app_file has no tenant_id"),
        "{}",
        out.message
    );
}
