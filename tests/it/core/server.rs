//! The server's life: durability across kill -9, one server per directory, start and stop,
//! a corrupt or original-format node_file, and concurrent, garbage-writing or stuck clients.

use crate::util;

use std::io::Write;
use std::time::Duration;

use util::Ha;

#[test]
fn acknowledged_writes_survive_kill_9() {
    let mut ha = Ha::started();
    for i in 1..=25 {
        let route = format!("10.{i}.0.0/16");
        ha.ok_line(&format!("create_node -i {i} -t t1 -n 10.0.1.20 -r {route}"));
    }
    ha.ok("delete_node", &["-i", "7"]);
    ha.kill9();
    assert!(
        ha.path("ha_server.pid").exists(),
        "kill -9 leaves the pid file behind"
    );
    ha.start(); // a stale pid file does not block a restart
    let json: serde_json::Value =
        serde_json::from_str(&ha.ok("show_node", &["-i", "all", "--json"])).expect("json");
    let nodes = json["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 24);
    assert!(nodes.iter().all(|n| n["index"] != 7));
    assert_eq!(nodes[9]["route"], "10.11.0.0/16");
}

#[test]
fn a_second_server_refuses_and_names_the_pid() {
    let ha = Ha::started();
    let out = ha.run("ha_server", &[]);
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("pid {}", ha.server_pid())), "{err}");
    assert!(
        ha.run("ha_api", &["-c", "ping"]).status.success(),
        "first server still answers"
    );
}

#[test]
fn ha_api_starts_and_stops_a_background_server() {
    let ha = Ha::new();
    ha.ok_starts("ha_api -c start", "200: HA server started");
    ha.ok_starts("ha_api -c start", "200: HA server already running");
    ha.ok("ha_api", &["-c", "ping"]);
    ha.ok_starts("ha_api -c stop", "200: HA server stopped");
    assert!(!ha.path("ha_server.fifo").exists(), "FIFO removed on stop");
    assert!(
        !ha.path("ha_server.pid").exists(),
        "pid file removed on stop"
    );
    ha.expect(3, "ha_api", &["-c", "ping"]);
    let out = ha.expect(2, "ha_api", &["-c", "reboot"]);
    assert!(
        out.contains("-c") && out.contains("start, stop, ping or status"),
        "{out}"
    );
}

#[test]
fn sigterm_exits_cleanly() {
    let mut ha = Ha::started();
    let pid = ha.server_pid() as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("kill");
    let status = ha.server.take().expect("child").wait().expect("wait");
    assert!(status.success(), "{status}");
    assert!(!ha.path("ha_server.fifo").exists() && !ha.path("ha_server.pid").exists());
}

#[test]
fn corrupt_node_file_refuses_to_start_and_is_not_overwritten() {
    let ha = Ha::new();
    std::fs::create_dir_all(&ha.root).expect("mkdir");
    let text = "index=1 provider=file routeTable=t1\nindex=2 provider=file bogus\n";
    std::fs::write(ha.path("node_file"), text).expect("write");
    let out = ha.run("ha_server", &[]);
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2"), "{err}");
    assert_eq!(ha.node_file(), text);
}

#[test]
fn original_python_node_file_is_imported() {
    let mut ha = Ha::new().with_env("CSR_HA_CLOUD", "aws");
    std::fs::create_dir_all(&ha.root).expect("mkdir");
    let original = "{'index': '1', 'routeTableId': 'rtb-0a1b2c3d', 'region': 'us-east-1', 'eniId': 'eni-0a1b2c3d', 'route': '10.0.0.0/16', 'mode': 'primary'}\n\
{'index': '2', 'cloud': 'azure', 'subscriptionId': 'sub-1', 'resourceGroup': 'rg1', 'routeTableName': 'rt1', 'nextHop': '10.0.0.4', 'appId': 'app-1', 'tenantId': 'ten-1', 'appKey': 'k3y'}\n\
{'index': '3', 'cloud': 'gcp', 'project': 'my-project', 'vpc': 'vpc-a', 'routeName': 'route-a', 'peerRouteName': 'route-b', 'nextHopIp': '10.0.0.2', 'hopPriority': '100', 'route': '10.1.0.0/16'}\n";
    std::fs::write(ha.path("node_file"), original).expect("write");
    ha.start();
    assert_eq!(
        std::fs::read_to_string(ha.path("node_file.orig")).expect("orig kept"),
        original
    );
    let json: serde_json::Value =
        serde_json::from_str(&ha.ok("show_node", &["-i", "all", "--json"])).expect("json");
    assert_eq!(json["nodes"][0]["routeTableId"], "rtb-0a1b2c3d");
    assert_eq!(json["nodes"][0]["mode"], "primary");
    assert_eq!(json["nodes"][1]["provider"], "azure");
    assert_eq!(json["nodes"][2]["hopPriority"], "100");
    let converted = ha.node_file();
    assert!(
        converted.contains("index=1 provider=aws routeTableId=rtb-0a1b2c3d"),
        "{converted}"
    );
    ha.kill9();
    ha.start();
    assert_eq!(
        ha.ok("show_node", &["-i", "all", "--json"])
            .matches("\"index\"")
            .count(),
        3
    );
}

#[test]
fn concurrent_clients_never_get_each_others_answers() {
    let ha = Ha::started();
    for c in 1..=8 {
        ha.ok_line(&format!("create_node -i {c} -t t{c} -n 10.0.1.20"));
    }
    let root = ha.root.clone();
    let workers: Vec<_> = (1..=8)
        .map(|c: u32| {
            let root = root.clone();
            std::thread::spawn(move || {
                for k in 0..100u32 {
                    let idx = c.to_string();
                    let out = if k % 2 == 0 {
                        let route = format!("10.{c}.{k}.0/24");
                        let o = std::process::Command::new(util::bin("set_params"))
                            .args(["-i", &idx, "-r", &route])
                            .env("CSR_HA_DIR", &root)
                            .env("CSR_HA_CLOUD", "file")
                            .output()
                            .expect("run");
                        let s = String::from_utf8_lossy(&o.stdout).into_owned();
                        assert!(
                            s.contains(&format!("route          {route}\n")),
                            "client {c}: {s}"
                        );
                        s
                    } else {
                        let o = std::process::Command::new(util::bin("show_node"))
                            .args(["-i", &idx])
                            .env("CSR_HA_DIR", &root)
                            .output()
                            .expect("run");
                        String::from_utf8_lossy(&o.stdout).into_owned()
                    };
                    assert!(
                        out.starts_with("200: ") || out.starts_with("199: "),
                        "client {c} request {k}: {out}"
                    );
                    assert!(
                        out.contains(&format!("index          {c}\n")),
                        "client {c} got another node: {out}"
                    );
                    assert!(
                        out.contains(&format!("routeTable     t{c}\n")),
                        "client {c}: {out}"
                    );
                    if k % 2 == 1 {
                        assert!(
                            out.contains(&format!("route          10.{c}.{}.0/24\n", k - 1)),
                            "client {c}: {out}"
                        );
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker");
    }
}

fn write_fifo(ha: &Ha, bytes: &[u8]) {
    let mut fifo = std::fs::OpenOptions::new()
        .write(true)
        .open(ha.path("ha_server.fifo"))
        .expect("open fifo");
    for chunk in bytes.chunks(4096) {
        fifo.write_all(chunk).expect("write fifo");
    }
}

#[test]
fn garbage_on_the_fifo_never_stops_the_server() {
    use csr_ha::protocol::{encode_request, Command, Request};
    let ha = Ha::started();
    ha.ok("create_node", &["-i", "1", "-t", "t1", "-n", "10.0.1.20"]);
    // 1 MB of pseudo-random bytes.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let random: Vec<u8> = (0..1 << 20)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect();
    write_fifo(&ha, &random);
    let good = encode_request(&Request::new(
        "nobody",
        Command::Ping,
        std::time::Duration::from_secs(5),
    ))
    .expect("frame");
    write_fifo(&ha, &good[..1000]); // truncated
    let mut wrong_version = good.clone();
    wrong_version[4] = 99;
    write_fifo(&ha, &wrong_version[..]);
    let mut oversized = good.to_vec();
    oversized.extend_from_slice(&[0xff; 100]);
    write_fifo(&ha, &oversized);
    let mut hostile = good.clone();
    hostile[6..14].copy_from_slice(&u64::MAX.to_le_bytes()); // absurd string length
    write_fifo(&ha, &hostile[..]);
    std::thread::sleep(Duration::from_millis(1200)); // let a stale partial frame expire
    let out = ha.ok("ha_api", &["-c", "ping"]);
    assert!(
        !out.contains(" 0 bad frame"),
        "bad frames were counted: {out}"
    );
    assert!(ha.show("1").contains("routeTable     t1"));
}

#[test]
fn a_client_that_never_reads_does_not_stall_others() {
    use csr_ha::protocol::{encode_request, Command, Request, Target};
    let ha = Ha::started();
    for i in 1..=400 {
        ha.ok_line(&format!(
            "create_node -i {i} -t table-with-a-long-name -n 2001:db8::1234"
        ));
    }
    // A reply FIFO that is open for reading but never read: the reply (> 64 KiB) cannot fit.
    let fifo = ha.path("replies/stuck-1");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    let _reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(&fifo)
        .expect("open reader");
    let request = Request::new(
        "stuck-1",
        Command::ShowNode {
            target: Target::All,
        },
        std::time::Duration::from_secs(5),
    );
    write_fifo(&ha, &encode_request(&request).expect("frame")[..]);
    // A client that died: its FIFO exists but nobody holds it open.
    let dead = ha.path("replies/dead-1");
    nix::unistd::mkfifo(&dead, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    let request = Request::new("dead-1", Command::Ping, std::time::Duration::from_secs(5));
    write_fifo(&ha, &encode_request(&request).expect("frame")[..]);
    // Path tricks are refused.
    let request = Request::new(
        "../ha_server.fifo",
        Command::Ping,
        std::time::Duration::from_secs(5),
    );
    write_fifo(&ha, &encode_request(&request).expect("frame")[..]);
    for _ in 0..5 {
        ha.ok("ha_api", &["-c", "ping"]);
    }
    assert!(ha.show("400").contains("index          400"));
}

use std::os::unix::fs::OpenOptionsExt;
