//! Installing and uninstalling with `scripts/install.sh` / `csr_ha_setup` in a temporary HOME:
//! cron jobs, systemd units (fake systemctl), idempotence, dry runs and refusals.

use crate::util;

use util::machine::*;

#[test]
fn install_without_systemd_starts_the_server_twice_changes_nothing_and_purge_leaves_no_trace() {
    let m = Machine::new(false);
    std::fs::write(
        m.home.join(".bashrc"),
        "# the user's own\nalias ll='ls -l'\n",
    )
    .expect("bashrc");
    let users_cron = "MAILTO=ops\n0 1 * * * /usr/bin/backup.sh\n";
    std::fs::write(m.fake.join("crontab.table"), users_cron).expect("crontab");
    let before = m.snapshot(false);

    let out = m.install(&["--cloud", "file", "--verify-every", "30"]);
    assert!(
        stdout(&out).contains("200: csr-ha installed"),
        "{}",
        text(&out)
    );

    // Binaries, wrappers and scripts in <prefix>/bin; the cloud word; PATH once per profile.
    for name in [
        "ha_server",
        "ha_event_handler",
        "revert_nodes.sh",
        "verify_nodes.sh",
        "check_nodes.sh",
        "debug_bundle.sh",
        "csr_ha_lib.sh",
    ] {
        assert!(
            m.prefix.join("bin").join(name).is_file(),
            "{name} not installed"
        );
    }
    assert_eq!(read(&m.ha_dir().join("cloud")), "file\n");
    let bashrc = read(&m.home.join(".bashrc"));
    assert!(
        bashrc.starts_with("# the user's own\nalias ll='ls -l'\n"),
        "{bashrc}"
    );
    let bin = m.prefix.join("bin");
    for profile in [".bashrc", ".profile"] {
        let text = read(&m.home.join(profile));
        assert_eq!(
            text.matches(&format!("PATH=\"{}:$PATH\"", bin.display()))
                .count(),
            1,
            "{profile}: {text}"
        );
    }
    // The PATH line works in a POSIX shell.
    let out = m
        .command(Path::new("/bin/sh"))
        .args(["-c", ". \"$HOME/.profile\"; command -v node_event.py"])
        .output_retrying()
        .expect("sh");
    assert_eq!(
        stdout(&out).trim(),
        bin.join("node_event.py").to_str().expect("utf-8"),
        "{}",
        text(&out)
    );

    // Two cron entries: revert every 5 minutes (restarting the server if down), verify every 30.
    let cron = m.crontab().expect("crontab installed");
    assert!(cron.starts_with(users_cron), "{cron}");
    let lines: Vec<&str> = cron.lines().skip(2).collect();
    assert_eq!(lines.len(), 2, "{cron}");
    assert!(
        lines[0].starts_with("*/5 * * * * ") && lines[0].contains("revert_nodes.sh' --start"),
        "{cron}"
    );
    assert!(
        lines[1].starts_with("*/30 * * * * ") && lines[1].contains("verify_nodes.sh'"),
        "{cron}"
    );
    assert!(
        cron.contains(&format!("CSR_HA_DIR='{}'", m.ha_dir().display())),
        "{cron}"
    );
    assert!(!m
        .calls()
        .iter()
        .any(|c| c.starts_with("systemctl") && !c.contains("is-system-running")));

    // The server runs: the installed wrappers reach it by full path from another directory.
    let ha_env = |cmd: &mut Command| {
        cmd.env("CSR_HA_DIR", m.ha_dir());
    };
    let mut ping = m.command(&bin.join("ha_api.py"));
    ha_env(&mut ping);
    let out = ping.args(["-c", "ping"]).output_retrying().expect("ping");
    assert_ok(&out, "ha_api.py -c ping");
    let out = m.installed(
        "create_node.py",
        &["-i", "5", "-t", "t1", "-n", "10.0.1.20", "-m", "primary"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = m.installed("show_node.py", &["-i", "5"]);
    assert!(stdout(&out).starts_with("200: "), "{}", text(&out));
    assert!(stdout(&out).contains("10.0.1.20"), "{}", text(&out));

    // A second identical install changes no file, no mtime, no cron table.
    let after_first = m.snapshot(true);
    let cron_first = m.crontab();
    m.clear_calls();
    m.install(&["--cloud", "file", "--verify-every", "30"]);
    assert_eq!(diff(&after_first, &m.snapshot(true)), Vec::<String>::new());
    assert_eq!(m.crontab(), cron_first);
    for call in m.calls() {
        assert!(
            call == "crontab -l" || call.ends_with("is-system-running"),
            "second install ran {call:?}"
        );
    }
    // Without the options, the recorded ones are kept.
    m.install(&[]);
    assert_eq!(diff(&after_first, &m.snapshot(true)), Vec::<String>::new());

    // Uninstall --purge: the server stops, and the machine is as before.
    let out = m.uninstall(&["--purge"]);
    assert!(
        stdout(&out).contains("200: HA server stopped"),
        "{}",
        text(&out)
    );
    assert_eq!(diff(&before, &m.snapshot(false)), Vec::<String>::new());
    assert_eq!(m.crontab().as_deref(), Some(users_cron));
}

/// Guestshell: not root, systemd runs as the system manager only (no user manager), and the
/// user has password-less sudo. The unit is then a system unit running as that user, as the
/// original's was. Runs the install as `nobody` through setpriv, so it needs root.
#[test]
fn a_user_with_sudo_and_no_user_systemd_gets_a_system_unit_running_as_that_user() {
    let root_uid = nix::unistd::Uid::effective().is_root();
    if !root_uid || !Path::new("/usr/bin/setpriv").exists() {
        eprintln!("skipped: needs root and /usr/bin/setpriv to run the install as another user");
        return;
    }
    let m = Machine::new(true);
    write_exec(
        &m.fake.join("systemctl"),
        "#!/bin/sh\necho \"systemctl $*\" >> \"$FAKE_DIR/calls\"\n\
         case \"$*\" in\n  *--user*is-system-running*) echo offline; exit 1 ;;\n  \
         *is-system-running*) echo running ;;\nesac\nexit 0\n",
    );
    write_exec(
        &m.fake.join("sudo"),
        "#!/bin/sh\necho \"sudo $*\" >> \"$FAKE_DIR/calls\"\n[ \"$1\" = -n ] && shift\nexec \"$@\"\n",
    );
    let unit_dir = m.root.join("etc-systemd-system");
    std::fs::create_dir(&unit_dir).expect("mkdir");
    let nobody = nix::unistd::Uid::from_raw(65534);
    let nogroup = nix::unistd::Gid::from_raw(65534);
    let mut stack = vec![m.root.clone()];
    while let Some(p) = stack.pop() {
        nix::unistd::chown(&p, Some(nobody), Some(nogroup)).expect("chown");
        if p.is_dir() {
            stack.extend(
                std::fs::read_dir(&p)
                    .expect("ls")
                    .flatten()
                    .map(|e| e.path()),
            );
        }
    }
    let as_nobody = |script: &Path, args: &[&str]| {
        let out = m
            .command(Path::new("/usr/bin/setpriv"))
            .env(
                "PATH",
                format!("{}:/usr/local/bin:/usr/bin:/bin", m.fake.display()),
            )
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "/bin/sh",
            ])
            .arg(script)
            .args(args)
            .output_retrying()
            .expect("setpriv");
        assert_ok(&out, &script.display().to_string());
        stdout(&out)
    };
    let bins = bin_dir();
    let install_args = [
        "--prefix",
        m.prefix.to_str().expect("utf-8"),
        "--bin-dir",
        bins.to_str().expect("utf-8"),
    ];
    // A dry run names the commands as this user would type them: systemctl through sudo.
    let dry = [&install_args[..], &["--dry-run"]].concat();
    let said = as_nobody(&repo().join("scripts/install.sh"), &dry);
    for want in [
        "dry-run: would run sudo systemctl daemon-reload\n",
        "dry-run: would run sudo systemctl enable csr_ha.service\n",
        "dry-run: would run sudo systemctl restart csr_ha.service\n",
    ] {
        assert!(said.contains(want), "no {want:?} in {said}");
    }
    assert!(!unit_dir.join("csr_ha.service").exists(), "{said}");
    let said = as_nobody(&repo().join("scripts/install.sh"), &install_args);
    assert!(said.contains("server via systemd"), "{said}");
    let unit = read(&unit_dir.join("csr_ha.service"));
    assert!(unit.contains("\nUser=nobody\n"), "{unit}");
    assert!(unit.contains("\nWantedBy=multi-user.target\n"), "{unit}");
    let calls = m.calls();
    for want in [
        "sudo -n true",
        "systemctl daemon-reload",
        "systemctl enable csr_ha.service",
        "systemctl restart csr_ha.service",
    ] {
        assert!(calls.iter().any(|c| c == want), "no {want:?} in {calls:?}");
    }
    assert!(
        !calls.iter().any(|c| c.starts_with("loginctl")),
        "{calls:?}"
    );

    as_nobody(&m.prefix.join("share/csr_ha/uninstall.sh"), &[]);
    assert!(!unit_dir.join("csr_ha.service").exists());
    assert!(m
        .calls()
        .iter()
        .any(|c| c == "systemctl disable --now csr_ha.service"));
}

#[test]
fn uninstall_without_purge_keeps_the_node_file_only() {
    let m = Machine::new(false);
    let before = m.snapshot(false);
    m.install(&["--cloud", "aws"]);
    assert_eq!(read(&m.ha_dir().join("cloud")), "aws\n");
    std::fs::write(m.ha_dir().join("node_file"), "# csr-ha node_file v1\n").expect("node_file");
    m.uninstall(&[]);
    let after = m.snapshot(false);
    let mut left: Vec<&str> = after
        .keys()
        .filter(|k| !before.contains_key(*k))
        .map(String::as_str)
        .collect();
    left.sort();
    // The server's events/ directory may stay too; nothing else of the install does.
    left.retain(|k| *k != "home/cloud/HA/events");
    assert_eq!(
        left,
        ["home/cloud", "home/cloud/HA", "home/cloud/HA/node_file"]
    );
    assert!(
        before.keys().all(|k| after.contains_key(k)),
        "uninstall removed a file it did not install"
    );
    assert!(m.ha_dir().join("node_file").is_file());
    assert!(!m.prefix.exists(), "prefix left behind");
}

#[test]
fn systemd_install_writes_a_restarting_unit_and_restarts_only_when_something_changed() {
    let m = Machine::new(true);
    let before = m.snapshot(false);
    m.install(&[]);
    let unit_path = m.home.join(".config/systemd/user/csr_ha.service");
    let unit = read(&unit_path);
    assert!(
        unit.contains(&format!(
            "ExecStart=\"{}\"",
            m.prefix.join("bin/ha_server").display()
        )),
        "{unit}"
    );
    assert!(
        unit.contains(&format!(
            "Environment=\"CSR_HA_DIR={}\"",
            m.ha_dir().display()
        )),
        "{unit}"
    );
    assert!(unit.contains("\nRestart=always\n"), "{unit}");
    assert!(unit.contains("\nWantedBy=default.target\n"), "{unit}");
    assert!(!unit.contains('@'), "placeholder left: {unit}");
    let calls = m.calls();
    for want in [
        "systemctl --user daemon-reload",
        "systemctl --user enable csr_ha.service",
        "systemctl --user restart csr_ha.service",
        "loginctl enable-linger",
    ] {
        assert!(
            calls.iter().any(|c| c.starts_with(want)),
            "no {want:?} in {calls:?}"
        );
    }
    // systemd keeps the server up, so the cron job does not start it.
    let cron = m.crontab().expect("crontab");
    assert!(cron.contains("revert_nodes.sh' >/dev/null"), "{cron}");
    assert_eq!(cron.lines().count(), 1, "{cron}");

    m.clear_calls();
    m.install(&[]);
    let calls = m.calls();
    assert!(
        !calls
            .iter()
            .any(|c| c.contains("restart") || c.contains("daemon-reload")),
        "{calls:?}"
    );
    assert!(
        calls
            .iter()
            .any(|c| c == "systemctl --user enable --now csr_ha.service"),
        "{calls:?}"
    );

    m.clear_calls();
    m.uninstall(&["--purge"]);
    let calls = m.calls();
    assert!(
        calls
            .iter()
            .any(|c| c == "systemctl --user disable --now csr_ha.service"),
        "{calls:?}"
    );
    assert!(
        calls.iter().any(|c| c == "systemctl --user daemon-reload"),
        "{calls:?}"
    );
    assert_eq!(diff(&before, &m.snapshot(false)), Vec::<String>::new());
}

#[test]
fn dry_run_changes_nothing() {
    let m = Machine::new(true);
    let before = m.snapshot(true);
    let out = m.install(&["--dry-run", "--verify-every", "60", "--check-every", "120"]);
    let said = stdout(&out);
    assert!(said.contains("dry-run: would install"), "{said}");
    assert!(said.contains("0 */1 * * *"), "{said}");
    assert!(said.contains("0 */2 * * *"), "{said}");
    assert!(said.contains("check_nodes.sh"), "{said}");
    assert!(said.contains("200: dry run done"), "{said}");
    // The commands as the user would type them, not the script's own function names.
    for want in [
        "dry-run: would run systemctl --user daemon-reload\n",
        "dry-run: would run systemctl --user enable csr_ha.service\n",
        "dry-run: would run systemctl --user restart csr_ha.service\n",
        "dry-run: would run loginctl enable-linger ",
    ] {
        assert!(said.contains(want), "no {want:?} in {said}");
    }
    assert!(!said.contains("sctl "), "{said}");
    assert_eq!(diff(&before, &m.snapshot(true)), Vec::<String>::new());
    for call in m.calls() {
        assert!(
            call == "crontab -l" || call.ends_with("is-system-running"),
            "dry run ran {call:?}"
        );
    }

    // The uninstaller's dry run too.
    m.install(&[]);
    m.clear_calls();
    let said = stdout(&m.uninstall(&["--dry-run"]));
    for want in [
        "dry-run: would run systemctl --user disable --now csr_ha.service\n",
        "dry-run: would run systemctl --user daemon-reload\n",
    ] {
        assert!(said.contains(want), "no {want:?} in {said}");
    }
    assert!(!said.contains("sctl "), "{said}");
    for call in m.calls() {
        assert!(!call.starts_with("systemctl"), "dry run ran {call:?}");
    }
}

/// `--check-every N`: a cron job dry-running peerFail on every node (nothing written), whose
/// failures go to csr_ha.log; kept by a rerun without the option, removed by 0 and by uninstall.
#[test]
fn check_every_installs_a_peer_fail_dry_run_cron_job() {
    let m = Machine::new(true);
    let users_cron = "0 1 * * * /usr/bin/backup.sh\n";
    std::fs::write(m.fake.join("crontab.table"), users_cron).expect("crontab");
    m.install(&["--check-every", "15", "--verify-every", "60"]);
    let check = m.prefix.join("bin/check_nodes.sh");
    let meta = std::fs::symlink_metadata(&check).expect("check_nodes.sh installed");
    assert!(meta.is_file() && meta.mode() & 0o111 != 0, "{meta:?}");
    let cron = m.crontab().expect("crontab");
    let check_line = format!(
        "*/15 * * * * CSR_HA_DIR='{}' '{}' >/dev/null 2>&1 # csr_ha: check",
        m.ha_dir().display(),
        check.display()
    );
    assert_eq!(
        cron.lines().filter(|l| *l == check_line).count(),
        1,
        "{cron}"
    );
    assert!(cron.starts_with(users_cron), "{cron}");
    assert!(cron.contains("verify_nodes.sh'"), "{cron}");

    // A rerun without the option keeps the job and changes nothing; with the same, neither.
    let after = m.snapshot(true);
    m.install(&[]);
    m.install(&["--check-every", "15"]);
    assert_eq!(diff(&after, &m.snapshot(true)), Vec::<String>::new());
    assert_eq!(m.crontab().as_deref(), Some(cron.as_str()));

    // The installed job runs `node_event -i all -e peerFail --dry-run`; a failure is logged.
    let failing = fake_node_event(
        &m,
        "400: node 3 peerFail (dry run): route 10.99.0.0/16 not found in rtb-0abc1234",
        1,
    );
    let out = m
        .command(&check)
        .env("CSR_HA_DIR", m.ha_dir())
        .env("CSR_HA_BIN", &failing)
        .output_retrying()
        .expect("run check_nodes.sh");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(
        read(&m.fake.join("node_event")),
        "-i all -e peerFail --dry-run\n"
    );
    let logged = read(&m.ha_dir().join("csr_ha.log"));
    assert!(logged.contains(" ERROR check_nodes.sh["), "{logged}");
    assert!(
        logged.trim_end().ends_with(
            "node_event -i all -e peerFail --dry-run exited 1: \
             400: node 3 peerFail (dry run): route 10.99.0.0/16 not found in rtb-0abc1234"
        ),
        "{logged}"
    );

    // 0 removes the job and keeps the others.
    m.install(&["--check-every", "0"]);
    let cron = m.crontab().expect("crontab");
    assert!(!cron.contains("check_nodes.sh"), "{cron}");
    assert!(cron.contains("verify_nodes.sh'"), "{cron}");
    m.install(&["--check-every", "1440"]);
    let cron = m.crontab().expect("crontab");
    assert!(
        cron.lines()
            .any(|l| l.starts_with("0 0 * * * ") && l.ends_with("# csr_ha: check")),
        "{cron}"
    );

    m.uninstall(&[]);
    assert_eq!(m.crontab().as_deref(), Some(users_cron));
    assert!(!check.exists());
}

#[test]
fn install_refuses_bad_options_before_changing_anything() {
    let m = Machine::new(false);
    for args in [
        vec!["--cloud", "openstack"],
        vec!["--verify-every", "90"],
        vec!["--verify-every", "abc"],
        vec!["--check-every", "90"],
        vec!["--check-every", "-5"],
        vec!["--service", "init"],
        vec!["--bogus"],
    ] {
        let out = m.script("install.sh", &args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("400: install: "),
            "{args:?}: {}",
            text(&out)
        );
    }
    assert!(!m.prefix.exists());
    assert!(!m.home.join("cloud").exists());
}

#[test]
fn install_builds_with_cargo_release_when_no_bin_dir_is_given() {
    let m = Machine::new(false);
    // A fake cargo that records its arguments; the "build output" is the test binaries.
    let target = m.root.join("target");
    std::fs::create_dir_all(target.join("release")).expect("mkdir");
    for name in ["ha_server", "ha_event_handler"]
        .into_iter()
        .chain(WRAPPERS)
    {
        std::os::unix::fs::symlink(bin_dir().join(name), target.join("release").join(name))
            .expect("symlink");
    }
    write_exec(
        &m.fake.join("cargo"),
        "#!/bin/sh\necho \"cargo $*\" >> \"$FAKE_DIR/calls\"\n",
    );
    let out = m
        .command(Path::new("/bin/sh"))
        .arg(repo().join("scripts/install.sh"))
        .args([
            "--prefix",
            m.prefix.to_str().expect("utf-8"),
            "--service",
            "none",
        ])
        .env("CSR_HA_CARGO", m.fake.join("cargo"))
        .env("CARGO_TARGET_DIR", &target)
        .output_retrying()
        .expect("install.sh");
    assert_ok(&out, "install.sh");
    let want = format!(
        "cargo build --release --locked --bins --manifest-path {}/Cargo.toml",
        repo().display()
    );
    assert!(m.calls().contains(&want), "{:?}", m.calls());
    let out = m.installed("show_node.py", &["-h"]);
    assert!(
        stdout(&out).starts_with("usage: show_node"),
        "{}",
        text(&out)
    );
    m.uninstall(&["--purge"]);
}
