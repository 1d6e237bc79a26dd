//! Azure sign-in against the loopback fake's IMDS and AAD login endpoint (tests/fakes/src/azure_fake):
//! app registrations and managed identities, the token cache, and no app key or bearer token in
//! any message, event file or log, also through the real `ha_event_handler`.

use crate::util;

use csr_ha::event::EventKind;
use csr_ha::node::{Node, Param, Provider};
use csr_ha::protocol::Status;
use csr_ha::work::{Action, NodeOutcome};
use util::azure_run::{fake_with_table, node, only, run, Run, OURS};

/// `node` logging in as an app registration instead of the managed identity.
fn with_app(node: Node, tenant: &str, app_id: &str, key: &str) -> Node {
    let app = [
        (Param::TenantId, tenant),
        (Param::AppId, app_id),
        (Param::AppKey, key),
    ];
    util::with_params(node, &app)
}

#[test]
fn app_credentials_get_a_token_from_the_login_endpoint() {
    let fake = fake_with_table("rt-app");
    let key = "Qx8~abcdefGHIJKLmnopQRSTuvwxYZ0123456789";
    fake.state().app = Some(("tenant-1".into(), "app-1".into(), key.into()));
    let ours = node(11, "rt-app", OURS, Some("10.99.0.0/16"));
    let n = with_app(ours, "tenant-1", "app-1", key);
    let run = run(&fake, EventKind::PeerFail, vec![n]);

    util::assert_outcome(only(&run), Status::Ok);
    let seen = fake.seen();
    assert!(
        !seen.iter().any(|s| s.is_imds()),
        "app credentials do not use the managed identity"
    );
    let login: Vec<_> = seen.iter().filter(|s| s.is_login()).collect();
    assert_eq!(login.len(), 1);
    assert_eq!(login[0].path(), "/tenant-1/oauth2/v2.0/token");
    let form = util::loopback::form(&login[0].body);
    assert_eq!(
        form.get("scope").map(String::as_str),
        Some("https://arm.fake.invalid/.default"),
        "the v2.0 scope of the ARM resource"
    );
    assert!(!form.contains_key("resource"), "v1.0's resource= is gone");
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
    let fake = fake_with_table("rt-enc");
    let decoded = "abc+def/ghi=jklmnopqrstuvwxyz0123456789ABCDEFG";
    let encoded = "abc%2Bdef%2Fghi%3Djklmnopqrstuvwxyz0123456789ABCDEFG";
    fake.state().app = Some(("t2".into(), "app-2".into(), decoded.into()));
    let ours = node(12, "rt-enc", OURS, Some("10.99.0.0/16"));
    let n = with_app(ours, "t2", "app-2", encoded);
    let run = run(&fake, EventKind::PeerFail, vec![n]);
    util::assert_outcome(only(&run), Status::Ok);
}

#[test]
fn a_wrong_app_key_fails_with_the_login_error_and_never_the_key() {
    let fake = fake_with_table("rt-badkey");
    fake.state().app = Some((
        "t3".into(),
        "app-3".into(),
        "the-right-key-0123456789".into(),
    ));
    let wrong = "Wr0ng~Key.abcdefghijklmnopqrstuvwxyz";
    let ours = node(13, "rt-badkey", OURS, None);
    let n = with_app(ours, "t3", "app-3", wrong);
    let run = run(&fake, EventKind::PeerFail, vec![n]);

    let out = only(&run);
    util::assert_outcome_says(
        out,
        Status::Failed,
        "invalid_client: AADSTS7000215: Invalid client secret provided",
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
    let fake = fake_with_table("rt-noid");
    fake.state().no_identity = true;
    let n = node(14, "rt-noid", OURS, None);
    let run = run(&fake, EventKind::PeerFail, vec![n]);
    let out = only(&run);
    util::assert_outcome(out, Status::Failed);
    util::assert_says(out, "Identity not found");
    util::assert_says(out, "-a -d -k");
}

#[test]
fn tokens_are_cached_and_replaced_when_arm_refuses_them() {
    let fake = fake_with_table("rt-cache");
    let first = run(
        &fake,
        EventKind::Verify,
        vec![node(15, "rt-cache", OURS, Some("10.99.0.0/16"))],
    );
    util::assert_outcome(only(&first), Status::Ok);
    let second = run(
        &fake,
        EventKind::Verify,
        vec![node(15, "rt-cache", OURS, Some("10.99.0.0/16"))],
    );
    util::assert_outcome(only(&second), Status::Ok);
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
    assert_eq!(only(&third).outcome, Status::Ok, "{:?}", third.outcomes);
    assert_eq!(fake.seen().iter().filter(|s| s.is_imds()).count(), 2);
    assert_eq!(fake.seen().iter().filter(|s| s.status == 401).count(), 1);
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
    let fake = fake_with_table("rt-secret");
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
    let outcomes: Vec<Status> = runs.iter().map(|r| only(r).outcome).collect();
    assert_eq!(
        outcomes,
        [
            Status::Ok,
            Status::Ok,
            Status::Failed,
            Status::Failed,
            Status::Ok
        ]
    );
    for run in &runs {
        assert_no_secret(run, &[key, wrong, &app_token, &imds_token]);
    }
}

/// The real entry point: `ha_event_handler` reads its endpoints from `CSR_HA_AZURE_*` (set on the
/// child only) and logs at trace level; no secret may reach its log, event files or output.
#[test]
fn the_handler_takes_endpoints_from_the_environment_and_logs_no_secret() {
    let fake = fake_with_table("rt-env");
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
    assert_eq!(outcomes[0].outcome, Status::Ok, "{outcomes:?}");
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
