//! Credentials shared by handler processes: a second event makes no metadata or login request,
//! an expired entry or a changed key fetches again, the files are owner-only, nothing secret is
//! logged, and `token_cache::clear` removes them.
use crate::util;

use util::aws_fakes;
use util::azure_fake;
use util::gcp_fake;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use csr_ha::cloud::token_cache;
use csr_ha::event::EventKind;
use csr_ha::node::{Node, Param, Provider};
use csr_ha::paths::HaDir;
use csr_ha::protocol::Status;
use csr_ha::work::{Action, NodeOutcome, Work};

/// An HA directory whose tmpfs is a private temporary directory.
struct Place {
    tmp: tempfile::TempDir,
}

impl Place {
    fn new() -> Place {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(tmp.path().join("HA")).expect("mkdir");
        std::fs::create_dir_all(tmp.path().join("run")).expect("mkdir");
        Place { tmp }
    }
    fn ha(&self) -> PathBuf {
        self.tmp.path().join("HA")
    }
    fn cache(&self) -> PathBuf {
        temp_env(self, || HaDir::new(self.ha()).credential_cache())
    }

    /// Runs one `ha_event_handler` process, as the server would, with `env`.
    fn handler(&self, kind: EventKind, node: Node, env: &[(&str, &str)]) -> NodeOutcome {
        let work = Work {
            deadline_ms: 10_000,
            ..util::work(Action::Event(kind), node.provider, &self.ha(), vec![node])
        };
        let mut cmd = util::handler();
        cmd.env_clear()
            .env("HOME", self.tmp.path())
            .env("XDG_RUNTIME_DIR", self.tmp.path().join("run"))
            .env("RUST_LOG", "trace")
            .env("AWS_EC2_METADATA_DISABLED", "true");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = util::run_handler(cmd, &work);
        let mut outcomes: Vec<NodeOutcome> = serde_json::from_slice(&out.stdout).expect("outcomes");
        outcomes.remove(0)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.ha().join("csr_ha.log")).unwrap_or_default()
    }
}

/// `HaDir::credential_cache` reads `XDG_RUNTIME_DIR`; the handlers get it in their environment,
/// and this computes the same path without changing the test process's environment for good.
fn temp_env<T>(place: &Place, f: impl FnOnce() -> T) -> T {
    use std::sync::Mutex;
    static ENV: Mutex<()> = Mutex::new(());
    let _guard = ENV.lock().unwrap_or_else(|e| e.into_inner());
    let old = std::env::var_os("XDG_RUNTIME_DIR");
    std::env::set_var("XDG_RUNTIME_DIR", place.tmp.path().join("run"));
    let value = f();
    match old {
        Some(v) => std::env::set_var("XDG_RUNTIME_DIR", v),
        None => std::env::remove_var("XDG_RUNTIME_DIR"),
    }
    value
}

fn assert_owner_only(cache: &Path) {
    let mode = |p: &Path| std::fs::metadata(p).expect("exists").permissions().mode() & 0o777;
    assert_eq!(mode(cache), 0o700, "{}", cache.display());
    let files: Vec<_> = std::fs::read_dir(cache).expect("ls").flatten().collect();
    assert!(!files.is_empty(), "nothing cached in {}", cache.display());
    for f in files {
        assert_eq!(mode(&f.path()), 0o600, "{}", f.path().display());
    }
}

/// Makes every cached entry expired, as time passing would.
fn expire_all(cache: &Path) {
    for f in std::fs::read_dir(cache).expect("ls").flatten() {
        let mut entry: serde_json::Value =
            serde_json::from_slice(&std::fs::read(f.path()).expect("read")).expect("json");
        entry["use_until_ms"] = serde_json::json!(1_000);
        std::fs::write(f.path(), entry.to_string()).expect("write");
    }
}

fn azure_node(key: &str) -> Node {
    let params = [
        (Param::Cloud, "azure"),
        (Param::SubscriptionId, azure_fake::SUB),
        (Param::ResourceGroup, azure_fake::GROUP),
        (Param::RouteTableName, "rt-c"),
        (Param::NextHop, "10.0.1.20"),
        (Param::Route, "10.99.0.0/16"),
        (Param::TenantId, "t1"),
        (Param::AppId, "app-1"),
        (Param::AppKey, key),
    ];
    util::node(1, Provider::Azure, &params)
}

#[test]
fn azure_tokens_are_shared_by_handlers_until_they_expire_or_the_key_changes() {
    let fake = azure_fake::Fake::start();
    fake.add_table(
        "rt-c",
        vec![azure_fake::FakeRoute::appliance(
            "to-dc",
            "10.99.0.0/16",
            "10.0.1.10",
        )],
    );
    let key = "Cache+Key/1=%&";
    {
        let mut st = fake.state();
        st.resource = String::new();
        st.app = Some(("t1".into(), "app-1".into(), key.into()));
    }
    let place = Place::new();
    let env = [
        ("CSR_HA_AZURE_ARM_ENDPOINT", fake.base.as_str()),
        ("CSR_HA_AZURE_LOGIN_ENDPOINT", fake.base.as_str()),
        ("CSR_HA_AZURE_IMDS_ENDPOINT", fake.base.as_str()),
    ];
    let logins = || fake.seen().iter().filter(|s| s.is_login()).count();

    let first = place.handler(EventKind::PeerFail, azure_node(key), &env);
    assert_eq!(first.outcome, Status::Ok, "{first:?}");
    assert_eq!(logins(), 1);
    let second = place.handler(EventKind::PeerFail, azure_node(key), &env);
    assert_eq!(second.outcome, Status::Ok, "{second:?}");
    assert_eq!(logins(), 1, "the second handler process reuses the token");

    let cache = place.cache();
    assert!(
        cache.starts_with(place.tmp.path().join("run")),
        "{}",
        cache.display()
    );
    assert_owner_only(&cache);
    let token = fake.state().app_token.clone();
    for f in std::fs::read_dir(&cache).expect("ls").flatten() {
        let name = f.file_name().to_string_lossy().into_owned();
        assert!(!name.contains(key) && !name.contains(&token), "{name}");
    }
    let log = place.log();
    assert!(!log.is_empty());
    assert!(!log.contains(&token) && !log.contains(key), "{log}");

    expire_all(&cache);
    place.handler(EventKind::Verify, azure_node(key), &env);
    assert_eq!(logins(), 2, "an expired token is fetched again");

    let new_key = "Another+Key/2=";
    fake.state().app = Some(("t1".into(), "app-1".into(), new_key.into()));
    let changed = place.handler(EventKind::Verify, azure_node(new_key), &env);
    assert_eq!(changed.outcome, Status::Ok, "{changed:?}");
    assert_eq!(
        logins(),
        3,
        "a changed key never reuses the old key's token"
    );

    temp_env(&place, || token_cache::clear(&HaDir::new(place.ha()))).expect("clear");
    assert!(!cache.exists(), "clear removes the cache");
}

#[test]
fn aws_role_credentials_and_session_token_are_shared_by_handlers() {
    let ec2 = aws_fakes::FakeEc2::start("rtb-0c0c0c0c", &[("10.99.0.0/16", "eni-0b0b0b0b")]);
    let imds = aws_fakes::FakeImds::start("2999-01-01T00:00:00Z");
    let place = Place::new();
    let env = [
        ("AWS_ENDPOINT_URL_EC2", ec2.endpoint.as_str()),
        ("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.endpoint.as_str()),
        ("AWS_EC2_METADATA_DISABLED", "false"),
    ];
    let node = |eni: &str| {
        let params = [
            (Param::RouteTableId, "rtb-0c0c0c0c"),
            (Param::Region, "us-east-1"),
            (Param::EniId, eni),
        ];
        util::node(1, Provider::Aws, &params)
    };
    let first = place.handler(EventKind::PeerFail, node("eni-0a0a0a0a"), &env);
    assert_eq!(first.outcome, Status::Ok, "{first:?}");
    assert_eq!((imds.tokens_issued(), imds.credential_fetches()), (1, 1));
    let calls = ec2.calls().len();
    let second = place.handler(EventKind::PeerFail, node("eni-0b0b0b0b"), &env);
    assert_eq!(second.outcome, Status::Ok, "{second:?}");
    assert_eq!(
        (imds.tokens_issued(), imds.credential_fetches()),
        (1, 1),
        "no metadata request on the second event"
    );
    assert_eq!(ec2.calls().len() - calls, 2, "describe and replace only");
    assert_owner_only(&place.cache());
    assert!(
        !place.log().contains("role-session-token"),
        "{}",
        place.log()
    );
    expire_all(&place.cache());
    place.handler(EventKind::Verify, node("eni-0b0b0b0b"), &env);
    assert_eq!((imds.tokens_issued(), imds.credential_fetches()), (2, 2));
}

#[test]
fn gcp_metadata_tokens_are_shared_by_handlers() {
    let fake = gcp_fake::GcpFake::start();
    fake.put_route(
        "proj-1",
        "vpc-1",
        "route-a",
        "10.99.0.0/16",
        "10.0.1.20",
        100,
    );
    let place = Place::new();
    let env = [
        ("CSR_HA_GCP_COMPUTE_ENDPOINT", fake.url.as_str()),
        ("GCE_METADATA_HOST", fake.host.as_str()),
    ];
    let node = util::gcp_run::router_a("secondary");
    for _ in 0..2 {
        let out = place.handler(EventKind::PeerFail, node.clone(), &env);
        assert_eq!(out.outcome, Status::Ok, "{out:?}");
    }
    assert_eq!(
        fake.state().tokens_issued,
        1,
        "no metadata request on the second event"
    );
    assert_owner_only(&place.cache());
    let token = fake.state().access_token.clone();
    assert!(!place.log().contains(&token), "{}", place.log());
}
