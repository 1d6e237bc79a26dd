//! A `node_file` that is not what the server wrote: a FIFO, the temp file of a write a
//! `kill -9` cut short, a symlink, a line that is not UTF-8; and garbage on the request FIFO,
//! whose warnings are counted, not written one line each.

use crate::util;

use std::io::Write;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use util::Ha;

/// Runs `ha_server` in `ha`'s directory, expecting it to exit (refusing to start) within 10 s;
/// a server still running then is killed and the test fails.
fn refused_start(ha: &Ha) -> Output {
    let mut cmd = std::process::Command::new(util::bin("ha_server"));
    cmd.env("CSR_HA_DIR", &ha.root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in &ha.env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn ha_server");
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        if let Ok(Some(_)) = child.try_wait() {
            return child.wait_with_output().expect("output");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let out = child.wait_with_output().expect("output");
    panic!(
        "ha_server still running after 10 s; stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_fifo_as_node_file_is_refused_at_start_naming_it() {
    let ha = Ha::new();
    std::fs::create_dir_all(&ha.root).expect("mkdir");
    let node_file = ha.path("node_file");
    nix::unistd::mkfifo(&node_file, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .expect("mkfifo");
    let out = refused_start(&ha);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "node_file {} is a FIFO, not a regular file",
            node_file.display()
        )),
        "{err}"
    );
}

#[test]
fn a_non_utf8_line_is_named_by_its_number() {
    let ha = Ha::new();
    std::fs::create_dir_all(&ha.root).expect("mkdir");
    let text = b"index=1 provider=file routeTable=t1 nextHop=10.0.1.20\n\
                 index=2 provider=file routeTable=t\xe92 nextHop=10.0.1.20\n";
    std::fs::write(ha.path("node_file"), text).expect("write");
    let out = refused_start(&ha);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("node_file line 2: is not UTF-8 text (byte 0xe9 at column 35)"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(ha.path("node_file")).expect("read"),
        text,
        "nothing overwritten"
    );
}

#[test]
fn temp_files_of_an_interrupted_write_are_removed_at_start() {
    let mut ha = Ha::new();
    std::fs::create_dir_all(&ha.root).expect("mkdir");
    // What a kill -9 between the temp file's creation and its rename leaves.
    let leftover = ha.path(".node_file.Xy12Ab");
    std::fs::write(&leftover, "").expect("write");
    ha.start();
    assert!(!leftover.exists(), "leftover temp file removed");
    let log = std::fs::read_to_string(ha.path("csr_ha.log")).expect("log");
    assert!(
        log.contains("removed .node_file.Xy12Ab, left by an interrupted write of node_file"),
        "{log}"
    );
    ha.ok("create_node", &["-i", "1", "-t", "t1", "-n", "10.0.1.20"]);
}

#[test]
fn a_symlinked_node_file_is_written_through_to_its_target() {
    let mut ha = Ha::new();
    std::fs::create_dir_all(&ha.root).expect("mkdir");
    let target = ha.scratch().join("kept-elsewhere");
    std::fs::write(
        &target,
        "index=1 provider=file routeTable=t1 nextHop=10.0.1.20\n",
    )
    .expect("write");
    std::os::unix::fs::symlink(&target, ha.path("node_file")).expect("symlink");
    ha.start();
    ha.ok("create_node", &["-i", "2", "-t", "t2", "-n", "10.0.1.20"]);
    let link = std::fs::symlink_metadata(ha.path("node_file")).expect("lstat");
    assert!(link.file_type().is_symlink(), "node_file is still a link");
    let text = std::fs::read_to_string(&target).expect("target");
    assert!(
        text.contains("index=1 provider=file") && text.contains("index=2 provider=file"),
        "{text}"
    );
    ha.kill9();
    ha.start();
    assert!(ha.show("2").contains("routeTable     t2"));
}

#[test]
fn bad_frames_are_logged_as_a_count_not_one_line_each() {
    use csr_ha::protocol::{encode_request, Command, Request};
    let ha = Ha::started();
    let good = encode_request(&Request::new(
        "nobody",
        Command::Ping,
        Duration::from_secs(5),
    ))
    .expect("frame");
    let mut wrong_version = good.clone();
    wrong_version[4] = 99;
    let mut fifo = std::fs::OpenOptions::new()
        .write(true)
        .open(ha.path("ha_server.fifo"))
        .expect("open fifo");
    for _ in 0..300 {
        fifo.write_all(&wrong_version[..]).expect("write fifo");
    }
    drop(fifo);
    let until = Instant::now() + Duration::from_secs(10);
    let counted = loop {
        let out = ha.ok("ha_api", &["-c", "ping"]);
        if out.contains(" 300 bad frame(s)") || Instant::now() > until {
            break out;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(counted.contains(" 300 bad frame(s)"), "{counted}");
    let log = std::fs::read_to_string(ha.path("csr_ha.log")).expect("log");
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("bad frame")).collect();
    assert!(
        !lines.is_empty() && lines.len() <= 2,
        "one line per interval, not one per frame: {} lines\n{}",
        lines.len(),
        lines.join("\n")
    );
    assert!(lines[0].contains("dropped 1 bad frame(s)"), "{}", lines[0]);
}
