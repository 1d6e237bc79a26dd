//! No secret reaches a user's terminal or a file, whatever form a server echoes it in.

use crate::util;

use util::azure_fake::{Fake, FakeRoute, GROUP, SUB};
use util::Ha;

/// Every character a key may hold that an encoder rewrites.
const KEY: &str = "Super+Secret/123=a%b&c";

/// The forms a server could echo the key in.
fn forms() -> Vec<String> {
    let upper = csr_ha::percent::encode(KEY, csr_ha::percent::UNRESERVED);
    vec![
        KEY.to_string(),
        upper.clone(),
        upper.to_ascii_lowercase(),
        serde_json::to_string(KEY).expect("json"),
        KEY.replace('/', "\\/"),
    ]
}

fn files_under(dir: &std::path::Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            files_under(&path, out);
        } else if !meta.is_file() {
            // FIFOs: opening one to read would wait for a writer.
            continue;
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.push((
                path.display().to_string(),
                String::from_utf8_lossy(&bytes).into_owned(),
            ));
        }
    }
}

#[test]
fn an_echoed_azure_app_key_never_reaches_output_log_events_or_last_events() {
    let fake = Fake::start();
    fake.add_table(
        "rt-echo",
        vec![FakeRoute::appliance("to-dc", "10.99.0.0/16", "10.0.1.10")],
    );
    {
        let mut st = fake.state();
        st.resource = String::new();
        st.app = Some(("tenant-1".into(), "app-1".into(), "the-right-key".into()));
        st.echo_login_body = true;
    }
    let mut ha = Ha::new()
        .with_private_runtime_dir()
        .with_env("CSR_HA_CLOUD", "azure")
        .with_env("CSR_HA_AZURE_ARM_ENDPOINT", &fake.base)
        .with_env("CSR_HA_AZURE_LOGIN_ENDPOINT", &fake.base)
        .with_env("CSR_HA_AZURE_IMDS_ENDPOINT", &fake.base)
        .with_env("RUST_LOG", "debug");
    ha.start();
    let created = ha.run(
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
            "rt-echo",
            "-n",
            "10.0.1.20",
            "-r",
            "10.99.0.0/16",
            "-a",
            "app-1",
            "-d",
            "tenant-1",
            "-k",
            KEY,
        ],
    );
    let event = ha.run("node_event", &["-i", "1", "-e", "peerFail"]);
    let shown = ha.run("show_node", &["-i", "1"]);
    drop(ha.server.take().map(|mut s| {
        let _ = s.kill();
        s.wait()
    }));

    let logins: Vec<_> = fake.seen().into_iter().filter(|s| s.is_login()).collect();
    assert!(!logins.is_empty(), "the key was sent to the login endpoint");
    assert!(
        logins[0]
            .body
            .contains("client_secret=Super%2BSecret%2F123%3Da%25b%26c"),
        "{}",
        logins[0].body
    );
    let event_out = String::from_utf8_lossy(&event.stdout).into_owned();
    assert!(
        event_out.contains("invalid_client") && event_out.contains("********"),
        "the echoed error is reported, masked: {event_out}"
    );
    let mut texts = vec![
        ("create_node".to_string(), format!("{created:?}")),
        ("node_event".to_string(), format!("{event:?}")),
        ("show_node".to_string(), format!("{shown:?}")),
    ];
    let mut files = Vec::new();
    files_under(&ha.root, &mut files);
    for name in ["csr_ha.log", "last_events.json"] {
        assert!(
            files.iter().any(|(p, _)| p.ends_with(name)),
            "{name} was written"
        );
    }
    assert!(files.iter().any(|(p, _)| p.contains("/events/node_1_")));
    texts.extend(files.into_iter().filter(|(p, _)| !p.ends_with("node_file")));
    for (place, text) in &texts {
        for form in forms() {
            assert!(
                !text.contains(&form),
                "{place} holds the key as {form}:\n{text}"
            );
        }
    }
}
