//! The server's life beside its clients: requests never outlive the client that sent them, the
//! server stays reachable when its FIFO or `replies/` is removed, files stay owner-only, and
//! clients end quietly when their stdout is closed.

use crate::util;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use util::Ha;

const B: &str = "10.0.1.20";

fn mode(path: &std::path::Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn a_request_whose_client_gave_up_is_never_applied() {
    let ha = Ha::started();
    let pid = Pid::from_raw(ha.server_pid() as i32);
    kill(pid, Signal::SIGSTOP).expect("SIGSTOP");
    let out = ha.run_env(
        "create_node",
        &["-i", "5", "-t", "t1", "-n", B],
        &[("CSR_HA_TIMEOUT", "0.5")],
    );
    kill(pid, Signal::SIGCONT).expect("SIGCONT");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}");
    assert!(stdout.contains("did not answer"), "{stdout}");
    ha.expect_starts(1, "show_node -i 5", "400: ");
    let ping = ha.ok("ha_api", &["-c", "ping"]);
    assert!(
        ping.contains("1 request(s) dropped after their client stopped waiting"),
        "{ping}"
    );
    assert!(
        !ha.path("node_file").exists() || {
            let db = ha.node_file();
            !db.contains("index=5")
        }
    );
}

/// Polls `ha_api -c ping` until it answers; panics after `within`.
fn answers_within(ha: &Ha, within: Duration) -> Duration {
    let started = Instant::now();
    while started.elapsed() < within {
        if ha.run("ha_api", &["-c", "ping"]).status.success() {
            return started.elapsed();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the server did not answer again within {within:?}");
}

#[test]
fn a_removed_fifo_and_replies_dir_are_recreated() {
    let ha = Ha::started();
    ha.ok("create_node", &["-i", "1", "-t", "t1", "-n", B]);
    std::fs::remove_file(ha.path("ha_server.fifo")).expect("rm fifo");
    let replies = ha.path("replies");
    if std::fs::symlink_metadata(&replies).is_ok_and(|m| m.file_type().is_symlink()) {
        let target = std::fs::read_link(&replies).expect("readlink");
        std::fs::remove_dir_all(&target).expect("rm replies target");
    }
    let _ = std::fs::remove_file(&replies);
    let _ = std::fs::remove_dir_all(&replies);
    answers_within(&ha, Duration::from_secs(2));
    assert!(ha.show("1").contains("index          1"));
}

#[test]
fn stop_works_when_the_fifo_is_gone() {
    let mut ha = Ha::started();
    let fifo = ha.path("ha_server.fifo");
    // Replace the FIFO by something that is not one: the server cannot listen there again, so
    // only the pid file can lead `stop` to it.
    std::fs::remove_file(&fifo).expect("rm fifo");
    std::fs::create_dir(&fifo).expect("mkdir in the fifo's place");
    let out = ha.ok_starts("ha_api -c stop", "200: HA server stopped");
    assert!(!out.contains("not running"), "{out}");
    let mut server = ha.server.take().expect("server");
    let until = Instant::now() + Duration::from_secs(5);
    while server.try_wait().expect("try_wait").is_none() {
        assert!(Instant::now() < until, "the server is still running");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = ha.ok("ha_api", &["-c", "stop"]);
    assert!(out.contains("200: HA server is not running"), "{out}");
}

#[test]
fn the_ha_directory_is_owner_only_however_it_was_made() {
    let mut ha = Ha::new();
    let root = ha.root.clone();
    std::fs::create_dir_all(root.join("events")).expect("mkdir");
    std::fs::write(root.join("events/node_1_old_peerFail"), "old").expect("old event");
    std::fs::write(root.join("cloud"), "file\n").expect("cloud");
    for (path, m) in [
        (root.clone(), 0o755),
        (root.join("events"), 0o777),
        (root.join("events/node_1_old_peerFail"), 0o666),
        (root.join("cloud"), 0o644),
    ] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(m)).expect("chmod");
    }
    ha.start();
    ha.table("t1", &[("10.99.0.0/16", "10.0.1.10")]);
    ha.ok_line(&format!("create_node -i 1 -t t1 -n {B} -r 10.99.0.0/16"));
    assert_eq!(mode(&root), 0o700);
    assert_eq!(mode(&root.join("events")), 0o700);
    for name in [
        "cloud",
        "ha_server.pid",
        "node_file",
        "events/node_1_old_peerFail",
    ] {
        assert_eq!(mode(&root.join(name)), 0o600, "{name}");
    }
    // events/ removed and made again by someone with a loose umask: still owner-only.
    std::fs::remove_dir_all(root.join("events")).expect("rm events");
    std::fs::create_dir(root.join("events")).expect("mkdir events");
    std::fs::set_permissions(root.join("events"), std::fs::Permissions::from_mode(0o777))
        .expect("chmod");
    ha.ok("node_event", &["-i", "1", "-e", "peerFail"]);
    assert_eq!(mode(&root.join("events")), 0o700);
    let files = ha.event_files();
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(mode(&root.join("events").join(&files[0])), 0o600);
    for name in ["last_events.json", "csr_ha.log", "route_tables/t1.json"] {
        let path = root.join(name);
        if path.exists() {
            assert_eq!(mode(&path) & 0o077, 0, "{name}");
        }
    }
}

#[test]
fn a_closed_stdout_ends_a_client_quietly() {
    let ha = Ha::started();
    // Far more output than a pipe holds (64 KiB), so the writer meets the closed pipe.
    let table = "a-route-table-with-a-rather-long-name-to-fill-the-pipe";
    for i in 1..=700 {
        ha.ok_line(&format!("create_node -i {i} -t {table} -n 2001:db8::1234"));
    }
    // `show_node -i all | head -1`: the pipe closes after the first line.
    let script = format!(
        "{} -i all | head -1; echo \"status=${{PIPESTATUS[0]}}\"",
        util::bin("show_node").display()
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .env("CSR_HA_DIR", &ha.root)
        .env("CSR_HA_CLOUD", "file")
        .stdin(Stdio::null())
        .output()
        .expect("bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.starts_with("200: "), "{stdout}");
    assert!(stdout.contains("status=0"), "{stdout} {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    // And a stdout closed before anything is written.
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "exec 1>&-; {} -i 1; echo \"status=$?\" >&2",
            util::bin("show_node").display()
        ))
        .env("CSR_HA_DIR", &ha.root)
        .env("CSR_HA_CLOUD", "file")
        .output()
        .expect("bash");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("status=0"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn stopping_the_server_removes_its_cached_credentials() {
    for how in ["ha_api", "sigterm"] {
        let mut ha = Ha::started();
        let cache = csr_ha::paths::HaDir::new(&ha.root).credential_cache();
        std::fs::create_dir_all(&cache).expect("mkdir cache");
        std::fs::write(cache.join("aws-role-0123"), "{}").expect("cached credential");
        if how == "ha_api" {
            ha.ok_starts("ha_api -c stop", "200: HA server stopped");
        } else {
            let mut child = ha.server.take().expect("server");
            kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).expect("SIGTERM");
            child.wait().expect("wait");
        }
        assert!(!cache.exists(), "{how}: {} is still there", cache.display());
    }
}
