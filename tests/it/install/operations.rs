//! Running on a router after install: the cron scripts (`revert_nodes.sh`, `verify_nodes.sh`),
//! the server log's cap, and the support bundle (`debug_bundle.sh`) with no secret in it.

use crate::util;

use util::machine::*;

#[test]
fn cron_scripts_log_failures_one_line_each_and_stay_quiet_otherwise() {
    let m = Machine::new(false);
    std::fs::create_dir_all(m.ha_dir()).expect("ha dir");
    let log = m.ha_dir().join("csr_ha.log");
    let run = |script: &str, bin: &Path| {
        m.command(Path::new("/bin/sh"))
            .arg(repo().join("scripts").join(script))
            .env("CSR_HA_DIR", m.ha_dir())
            .env("CSR_HA_BIN", bin)
            .output_retrying()
            .expect("run cron script")
    };

    let ok = fake_node_event(&m, "200: node 3 revert: nothing to change", 0);
    let out = run("revert_nodes.sh", &ok);
    assert_ok(&out, "revert_nodes.sh");
    assert_eq!(read(&log), "");
    assert_eq!(read(&m.fake.join("node_event")), "-i all -e revert\n");

    let none = fake_node_event(&m, "400: No redundancy nodes found", 1);
    assert_ok(
        &run("revert_nodes.sh", &none),
        "revert_nodes.sh with no nodes",
    );
    assert_eq!(read(&log), "");

    let failing = fake_node_event(
        &m,
        "400: node 3 verify: route table t1 not found\n200: node 4 verify: ok",
        1,
    );
    let out = run("verify_nodes.sh", &failing);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let logged = read(&log);
    let lines: Vec<&str> = logged.lines().collect();
    assert_eq!(lines.len(), 2, "{logged}");
    assert!(lines[0].contains(" ERROR verify_nodes.sh["), "{logged}");
    assert!(
        lines[0].ends_with(
            "node_event -i all -e verify exited 1: 400: node 3 verify: route table t1 not found"
        ),
        "{logged}"
    );
    assert!(read(&m.fake.join("node_event")).ends_with("-i all -e verify\n"));
}

#[test]
fn revert_with_start_brings_up_a_stopped_server() {
    let m = Machine::new(false);
    let out = m
        .command(Path::new("/bin/sh"))
        .arg(repo().join("scripts/revert_nodes.sh"))
        .arg("--start")
        .env("CSR_HA_DIR", m.ha_dir())
        .env("CSR_HA_BIN", bin_dir())
        .output_retrying()
        .expect("run revert_nodes.sh");
    let stop = || {
        m.command(&bin_dir().join("ha_api"))
            .env("CSR_HA_DIR", m.ha_dir())
            .args(["-c", "stop"])
            .output_retrying()
            .expect("stop")
    };
    let ping = m
        .command(&bin_dir().join("ha_api"))
        .env("CSR_HA_DIR", m.ha_dir())
        .args(["-c", "ping"])
        .output_retrying();
    stop();
    assert_ok(&out, "revert_nodes.sh --start");
    assert_ok(
        &ping.expect("ping"),
        "ha_api -c ping after revert_nodes.sh --start",
    );
    assert!(
        read(&m.ha_dir().join("csr_ha.log")).contains("HA server was not answering; started it")
    );
}

#[test]
fn debug_bundle_holds_the_files_and_no_secret() {
    let m = Machine::new(false);
    let ha = m.ha_dir();
    std::fs::create_dir_all(ha.join("events")).expect("mkdir");
    // As create_node -p azure ... -k 'Sup3r/Secret=Key' stores it (percent-encoded).
    let key_stored = "Sup3r%2FSecret%3DKey";
    let key = "Sup3r/Secret=Key";
    std::fs::write(
        ha.join("node_file"),
        format!(
            "# csr-ha node_file v1\nindex=3 provider=azure cloud=azure subscriptionId=sub-1 resourceGroup=rg \
             routeTableName=rt1 nextHop=10.0.1.20 appId=app-1 tenantId=ten-1 appKey={key_stored} mode=primary\n"
        ),
    )
    .expect("node_file");
    std::fs::write(
        ha.join("node_file.orig"),
        "{'index': '3', 'appKey': 'OldPyth0nKey'}\n",
    )
    .expect("orig");
    std::fs::write(
        ha.join("csr_ha.log"),
        format!(
            "[t INFO  ha_server[1] x] node 3 peerFail: ok\n\
             [t WARN  ha_event_handler[2] x] request had Authorization: Bearer eyJhbGciOi.eyJzdWIi.c2lnbmF0dXJl\n\
             [t WARN  ha_event_handler[2] x] leaked {key} and OldPyth0nKey\n\
             AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n\
             {{\"access_token\": \"ya29.tok3n\", \"expires_in\": 3599}}\n"
        ),
    )
    .expect("log");
    std::fs::write(
        ha.join("events/node_3_2026-11-24_18:20:13_peerFail"),
        format!("Event type is peerFail\nkey {key_stored}\n"),
    )
    .expect("event");
    std::fs::write(ha.join("cloud"), "azure\n").expect("cloud");
    let out_dir = m.root.join("out");
    std::fs::create_dir(&out_dir).expect("mkdir out");
    // What debug_ha.sh collected: archived logs, the unit's journal (here the system unit's
    // only), /var/log/messages, pip freeze (pip3 is the same pip: listed once).
    let archive = m.root.join("bootflash-csr_ha");
    std::fs::create_dir(&archive).expect("mkdir archive");
    std::fs::write(
        archive.join("csr_ha.log.20261124T191900.123Z"),
        format!("[t INFO  ha_server[1] x] node 3 archived line with {key}\n"),
    )
    .expect("archived log");
    std::fs::write(archive.join("unrelated.txt"), "not ours").expect("unrelated");
    write_exec(
        &m.fake.join("journalctl"),
        "#!/bin/sh\ncase \"$*\" in\n  *--user*) echo '-- No entries --' ;;\n  \
         *) echo \"journal $*\"; echo 'ha_server: token=ya29.tok3n' ;;\nesac\n",
    );
    let messages = m.root.join("messages");
    std::fs::write(
        &messages,
        "Nov 24 guestshell systemd: Started csr-ha\nNov 24 x: Authorization: Bearer eyJzdWIi\n",
    )
    .expect("messages");
    let pips = m.root.join("pips");
    std::fs::create_dir(&pips).expect("mkdir pips");
    write_exec(
        &pips.join("pip"),
        "#!/bin/sh\necho \"pip $*\"\necho 'csr-ha==3.0.0'\n\
         echo 'private @ https://deploy:Sup3r@pypi.example/private.whl'\n",
    );
    std::os::unix::fs::symlink(pips.join("pip"), pips.join("pip3")).expect("symlink");

    let out = m
        .command(Path::new("/bin/sh"))
        .arg(repo().join("scripts/debug_bundle.sh"))
        .args(["-o", out_dir.to_str().expect("utf-8")])
        .env("CSR_HA_DIR", &ha)
        .env("CSR_HA_BIN", bin_dir())
        .env("CSR_HA_LOG_ARCHIVE_DIR", &archive)
        .env("CSR_HA_JOURNALCTL", m.fake.join("journalctl"))
        .env("CSR_HA_MESSAGES", &messages)
        .env("PATH", format!("{}:/usr/bin:/bin", pips.display()))
        .output_retrying()
        .expect("run debug_bundle.sh");
    assert_ok(&out, "debug_bundle.sh");
    let tarballs: Vec<PathBuf> = std::fs::read_dir(&out_dir)
        .expect("ls")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(tarballs.len(), 1, "{tarballs:?}");
    let name = tarballs[0]
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    assert!(
        name.starts_with("csr_ha_debug_") && name.ends_with(".tar.gz"),
        "{name}"
    );
    assert!(stdout(&out).contains(&name), "{}", text(&out));

    let x = m.root.join("x");
    std::fs::create_dir(&x).expect("mkdir");
    let untar = Command::new("tar")
        .arg("-xzf")
        .arg(&tarballs[0])
        .arg("-C")
        .arg(&x)
        .output_retrying()
        .expect("tar");
    assert_ok(&untar, "tar -xzf");
    let top = std::fs::read_dir(&x)
        .expect("ls")
        .flatten()
        .next()
        .expect("one directory")
        .path();

    let mut files = BTreeMap::new();
    walk(&top, &top, false, &mut files);
    for want in [
        "node_file",
        "node_file.orig",
        "csr_ha.log",
        "cloud",
        "versions.txt",
        "service.txt",
        "cron.txt",
        "archive/csr_ha.log.20261124T191900.123Z",
        "journal.txt",
        "messages.txt",
        "pip_freeze.txt",
        "os-release.txt",
    ] {
        assert!(files.contains_key(want), "{want} missing from {files:?}");
    }
    assert!(!files.contains_key("archive/unrelated.txt"), "{files:?}");
    let journal = read(&top.join("journal.txt"));
    assert_eq!(
        journal,
        "== journalctl --system -u csr_ha.service -n 2000\n\
         journal --system -u csr_ha.service --no-pager -q -n 2000\n\
         ha_server: token=REDACTED\n"
    );
    let tail = read(&top.join("messages.txt"));
    assert!(tail.contains("Started csr-ha"), "{tail}");
    let freeze = read(&top.join("pip_freeze.txt"));
    assert_eq!(freeze.matches("== pip").count(), 1, "{freeze}");
    assert!(
        freeze.contains("pip freeze --disable-pip-version-check\ncsr-ha==3.0.0\n"),
        "{freeze}"
    );
    let os = read(&top.join("os-release.txt"));
    assert!(
        os.starts_with("== /etc/") || os.starts_with("no /etc/os-release"),
        "{os}"
    );
    assert!(
        files.keys().any(|k| k.starts_with("events/node_3_")),
        "{files:?}"
    );
    let node_file = read(&top.join("node_file"));
    assert!(
        node_file.contains("index=3 provider=azure") && node_file.contains("appKey=REDACTED"),
        "{node_file}"
    );
    assert!(read(&top.join("versions.txt")).contains("cloud word: azure"));
    let service = read(&top.join("service.txt"));
    assert!(
        service.contains("== ha_api -c status\n400: HA server is not running"),
        "{service}"
    );

    let secrets = [
        key,
        key_stored,
        "Sup3r",
        "OldPyth0nKey",
        "eyJzdWIi",
        "wJalrXUtnFEMI",
        "ya29.tok3n",
    ];
    for rel in files.keys() {
        let path = top.join(rel);
        if !path.is_file() {
            continue;
        }
        let content = read(&path);
        for secret in secrets {
            assert!(
                !content.contains(secret),
                "{rel} contains {secret:?}:\n{content}"
            );
        }
    }
}

#[test]
fn server_log_is_capped_with_one_rotated_file_of_timestamped_lines() {
    let mut ha = util::Ha::new().with_env("CSR_HA_LOG_MAX_BYTES", "1500");
    ha.start();
    for i in 1..=40 {
        let index = i.to_string();
        ha.run(
            "create_node",
            &["-i", &index, "-t", "t1", "-n", "10.0.1.20"],
        );
        ha.run("delete_node", &["-i", &index]);
    }
    let log = read(&ha.path("csr_ha.log"));
    let old = read(&ha.path("csr_ha.log.1"));
    assert!(
        !old.is_empty(),
        "no rotation happened; log is {} bytes",
        log.len()
    );
    assert!(!ha.path("csr_ha.log.2").exists());
    let longest = log
        .lines()
        .chain(old.lines())
        .map(str::len)
        .max()
        .unwrap_or(0);
    assert!(log.len() <= 1500 + longest + 1, "log {} bytes", log.len());
    assert!(old.len() <= 1500 + longest + 1, "log.1 {} bytes", old.len());
    for line in log.lines().chain(old.lines()) {
        // [2026-11-24T19:19:00.123Z INFO  ha_server[28654] csr_ha::server] ...
        let ts = line.get(1..25).unwrap_or("");
        assert!(
            line.starts_with('[') && ts.ends_with('Z') && ts.as_bytes()[10] == b'T',
            "{line}"
        );
        assert!(
            line.contains(" ha_server[") || line.contains(" ha_event_handler["),
            "{line}"
        );
    }
}
