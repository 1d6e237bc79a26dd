//! Deployment: the `bin/` wrappers, `scripts/install.sh` / `uninstall.sh`, the cron scripts and
//! `scripts/debug_bundle.sh`, run for real in a temporary HOME and prefix. systemd, crontab and
//! loginctl are fakes that record their calls (the scripts take them from `CSR_HA_SYSTEMCTL`,
//! `CSR_HA_CRONTAB`, `CSR_HA_LOGINCTL`); the binaries are the ones cargo built for this test run,
//! copied with `install.sh --bin-dir`, so no release build is needed.

mod util;

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hasher};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use util::{write_exec, OutputRetry};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The directory holding the binaries built for this test run.
fn bin_dir() -> PathBuf {
    util::bin("ha_server")
        .parent()
        .expect("bin dir")
        .to_path_buf()
}

const WRAPPERS: [&str; 7] = [
    "create_node",
    "set_params",
    "clear_params",
    "delete_node",
    "show_node",
    "node_event",
    "ha_api",
];

const FAKE_CRONTAB: &str = r#"#!/bin/sh
# fake crontab: the table lives in $FAKE_DIR/crontab.table; every call is appended to $FAKE_DIR/calls
echo "crontab $*" >> "$FAKE_DIR/calls"
case $1 in
  -l) [ -f "$FAKE_DIR/crontab.table" ] || { echo "no crontab for $(id -un)" >&2; exit 1; }
      cat "$FAKE_DIR/crontab.table" ;;
  -r) rm -f "$FAKE_DIR/crontab.table" ;;
  -) cat > "$FAKE_DIR/crontab.table" ;;
  *) cat "$1" > "$FAKE_DIR/crontab.table" ;;
esac
"#;

/// Answers `is-system-running` with $FAKE_SYSTEMD (running, or offline = no systemd).
const FAKE_SYSTEMCTL: &str = r#"#!/bin/sh
echo "systemctl $*" >> "$FAKE_DIR/calls"
case "$*" in
  *is-system-running*) echo "$FAKE_SYSTEMD"; [ "$FAKE_SYSTEMD" = running ] ;;
  *) exit 0 ;;
esac
"#;

const FAKE_LOGINCTL: &str = "#!/bin/sh\necho \"loginctl $*\" >> \"$FAKE_DIR/calls\"\n";

/// A temporary machine: HOME, an install prefix, fake systemctl/crontab/loginctl.
struct Machine {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    home: PathBuf,
    prefix: PathBuf,
    fake: PathBuf,
    elsewhere: PathBuf,
    systemd: bool,
}

impl Machine {
    fn new(systemd: bool) -> Machine {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().to_path_buf();
        let (home, fake, elsewhere) =
            (root.join("home"), root.join("fake"), root.join("elsewhere"));
        for d in [&home, &fake, &elsewhere] {
            std::fs::create_dir(d).expect("mkdir");
        }
        write_exec(&fake.join("crontab"), FAKE_CRONTAB);
        write_exec(&fake.join("systemctl"), FAKE_SYSTEMCTL);
        write_exec(&fake.join("loginctl"), FAKE_LOGINCTL);
        let prefix = root.join("prefix");
        Machine {
            _tmp: tmp,
            root,
            home,
            prefix,
            fake,
            elsewhere,
            systemd,
        }
    }

    fn ha_dir(&self) -> PathBuf {
        self.home.join("cloud").join("HA")
    }

    /// A command with nothing from this process's environment but a plain PATH.
    fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", &self.home)
            .env("FAKE_DIR", &self.fake)
            .env(
                "FAKE_SYSTEMD",
                if self.systemd { "running" } else { "offline" },
            )
            .env("CSR_HA_SYSTEMCTL", self.fake.join("systemctl"))
            .env("CSR_HA_CRONTAB", self.fake.join("crontab"))
            .env("CSR_HA_LOGINCTL", self.fake.join("loginctl"))
            // Even a system-scope install must never reach the real /etc/systemd/system.
            .env(
                "CSR_HA_SYSTEM_UNIT_DIR",
                self.root.join("etc-systemd-system"),
            )
            .current_dir(&self.elsewhere)
            .stdin(Stdio::null());
        cmd
    }

    fn script(&self, name: &str, args: &[&str]) -> Output {
        self.command(Path::new("/bin/sh"))
            .arg(repo().join("scripts").join(name))
            .args(args)
            .output_retrying()
            .expect("run script")
    }

    fn install(&self, extra: &[&str]) -> Output {
        let prefix = self.prefix.to_str().expect("utf-8 path");
        let bins = bin_dir();
        let mut args = vec![
            "--prefix",
            prefix,
            "--bin-dir",
            bins.to_str().expect("utf-8"),
            "--scope",
            "user",
        ];
        args.extend_from_slice(extra);
        let out = self.script("install.sh", &args);
        assert_ok(&out, "install.sh");
        out
    }

    fn uninstall(&self, extra: &[&str]) -> Output {
        let out = self
            .command(&self.prefix.join("share/csr_ha/uninstall.sh"))
            .args(extra)
            .output_retrying()
            .expect("run uninstall.sh");
        assert_ok(&out, "uninstall.sh");
        out
    }

    /// Runs an installed command by full path from another directory.
    fn installed(&self, name: &str, args: &[&str]) -> Output {
        self.command(&self.prefix.join("bin").join(name))
            .args(args)
            .output_retrying()
            .expect("run installed command")
    }

    fn calls(&self) -> Vec<String> {
        read(&self.fake.join("calls"))
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn clear_calls(&self) {
        let _ = std::fs::remove_file(self.fake.join("calls"));
    }

    fn crontab(&self) -> Option<String> {
        std::fs::read_to_string(self.fake.join("crontab.table")).ok()
    }

    /// Everything under the machine's root except the fakes' call log, the server's log and
    /// event files (which record time passing, not installation state).
    fn snapshot(&self, with_times: bool) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        walk(&self.root, &self.root, with_times, &mut out);
        out.remove("fake/calls");
        out.retain(|k, _| !k.contains("csr_ha.log") && !k.contains("/events/"));
        out
    }
}

impl Drop for Machine {
    /// Never leave a server running, whatever the test did.
    fn drop(&mut self) {
        let api = self.prefix.join("bin/ha_api");
        if api.exists() {
            let _ = self
                .command(&api)
                .env("CSR_HA_DIR", self.ha_dir())
                .args(["-c", "stop"])
                .output_retrying();
        }
    }
}

fn walk(root: &Path, dir: &Path, with_times: bool, out: &mut BTreeMap<String, String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let rel = path
            .strip_prefix(root)
            .expect("under root")
            .to_string_lossy()
            .into_owned();
        let meta = std::fs::symlink_metadata(&path).expect("metadata");
        let mode = meta.permissions().mode() & 0o7777;
        let mut desc = format!("mode {mode:o}");
        if meta.is_dir() {
            desc.push_str(" dir");
            walk(root, &path, with_times, out);
        } else if meta.is_file() {
            if meta.len() < 1 << 20 {
                let mut h = DefaultHasher::new();
                h.write(&std::fs::read(&path).expect("read"));
                desc.push_str(&format!(" hash {:x}", h.finish()));
            } else {
                // Binaries: a reinstall replaces by rename, so a rewrite shows in the inode.
                desc.push_str(&format!(" len {} ino {}", meta.len(), meta.ino()));
            }
            if with_times {
                desc.push_str(&format!(" mtime {}.{}", meta.mtime(), meta.mtime_nsec()));
            }
        } else {
            desc.push_str(" other");
        }
        out.insert(rel, desc);
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn assert_ok(out: &Output, what: &str) {
    assert!(out.status.success(), "{what} failed: {}", text(out));
}

fn diff(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> Vec<String> {
    let mut d = Vec::new();
    for (k, v) in a {
        match b.get(k) {
            None => d.push(format!("- {k} ({v})")),
            Some(w) if w != v => d.push(format!("~ {k}: {v} -> {w}")),
            _ => {}
        }
    }
    for (k, v) in b {
        if !a.contains_key(k) {
            d.push(format!("+ {k} ({v})"));
        }
    }
    d
}

// ---------------------------------------------------------------------------------------------
// Wrappers

#[test]
fn all_wrappers_are_the_same_executable_posix_sh_script() {
    let first = std::fs::read(repo().join("bin/node_event.py")).expect("bin/node_event.py");
    assert!(first.starts_with(b"#!/bin/sh\n"));
    for name in WRAPPERS {
        for file in [name.to_string(), format!("{name}.py")] {
            let path = repo().join("bin").join(&file);
            assert_eq!(
                std::fs::read(&path).expect("wrapper"),
                first,
                "bin/{file} differs from bin/node_event.py"
            );
            let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
            assert_eq!(mode & 0o111, 0o111, "bin/{file} is not executable");
        }
    }
    let out = Command::new("sh")
        .arg("-n")
        .arg(repo().join("bin/node_event.py"))
        .output_retrying()
        .expect("sh -n");
    assert_ok(&out, "sh -n bin/node_event.py");
}

#[test]
fn checkout_wrappers_run_the_built_binaries_by_full_path_from_any_directory() {
    let m = Machine::new(false);
    let target = bin_dir().parent().expect("target dir").to_path_buf();
    for name in WRAPPERS {
        for file in [name.to_string(), format!("{name}.py")] {
            let out = m
                .command(&repo().join("bin").join(&file))
                .env("CARGO_TARGET_DIR", &target)
                .arg("-h")
                .output_retrying()
                .expect("run wrapper");
            assert_ok(&out, &file);
            assert!(
                stdout(&out).starts_with(&format!("usage: {name}")),
                "bin/{file} -h: {}",
                text(&out)
            );
        }
    }
    // Arguments and exit codes pass through unchanged.
    let out = m
        .command(&repo().join("bin/node_event.py"))
        .env("CARGO_TARGET_DIR", &target)
        .args(["-i", "0", "-e", "revert"])
        .output_retrying()
        .expect("run wrapper");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(stdout(&out).starts_with("400: "), "{}", text(&out));
}

#[test]
fn a_symlinked_wrapper_finds_its_binary_and_a_missing_one_says_where_it_looked() {
    let m = Machine::new(false);
    let link = m.elsewhere.join("status.py");
    std::os::unix::fs::symlink(repo().join("bin/show_node.py"), &link).expect("symlink");
    let out = m
        .command(&link)
        .env("CSR_HA_BIN", bin_dir())
        .arg("-h")
        .output_retrying()
        .expect("run");
    assert!(
        stdout(&out).starts_with("usage: show_node"),
        "{}",
        text(&out)
    );

    let out = m
        .command(&repo().join("bin/ha_api.py"))
        .env("CSR_HA_BIN", &m.fake)
        .arg("-h")
        .output_retrying()
        .expect("run");
    assert_eq!(out.status.code(), Some(127), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("400: CSR_HA_BIN="), "{err}");

    // An installed-looking copy with no binary beside it and none on PATH.
    let lone = m.elsewhere.join("node_event.py");
    std::fs::copy(repo().join("bin/node_event.py"), &lone).expect("copy");
    let out = m.command(&lone).arg("-h").output_retrying().expect("run");
    assert_eq!(out.status.code(), Some(127), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot find the csr-ha binary 'node_event'")
    );
}

// ---------------------------------------------------------------------------------------------
// install.sh / uninstall.sh

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
        "debug_bundle.sh",
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

/// What the original Python package (csr_ha 2.0.2) left on a router, in a Machine: a cron line,
/// a unit with `ExecStart=… ha_server.py start`, `sock_file`, a Python-format `node_file`, the
/// `.bashrc` aliases and a running stand-in `…/csr_ha/server/ha_server.py start`.
struct Legacy {
    server: std::process::Child,
    cron_line: String,
    unit: PathBuf,
}

impl Legacy {
    fn new(m: &Machine) -> Legacy {
        let site = m.home.join(".local/lib/python3.6/site-packages/csr_ha");
        std::fs::create_dir_all(site.join("server")).expect("mkdir");
        std::fs::create_dir_all(site.join("client_api")).expect("mkdir");
        let script = site.join("server/ha_server.py");
        std::fs::write(&script, "while :; do sleep 1; done\n").expect("stand-in");
        let server = Command::new("sh")
            .arg(&script)
            .arg("start")
            .stdin(Stdio::null())
            .spawn()
            .expect("start the stand-in ha_server.py");
        let cron_line = format!(
            "*/5 * * * * bash {}",
            site.join("client_api/revert_nodes.sh").display()
        );
        std::fs::write(
            m.fake.join("crontab.table"),
            format!("0 1 * * * /usr/bin/backup.sh\n{cron_line}\n"),
        )
        .expect("crontab");
        let unit = m.root.join("etc-systemd-user/csr_ha.service");
        std::fs::create_dir_all(unit.parent().expect("dir")).expect("mkdir");
        std::fs::write(
            &unit,
            format!(
                "[Service]\nExecStart=/usr/bin/python3 {} start\nRestart=always\nUser=guestshell\n",
                script.display()
            ),
        )
        .expect("unit");
        std::fs::create_dir_all(m.ha_dir()).expect("ha dir");
        std::os::unix::net::UnixListener::bind(m.ha_dir().join("sock_file")).expect("sock_file");
        std::fs::write(
            m.ha_dir().join("node_file"),
            "{'index': '1', 'routeTableId': 'rtb-c8bb373c6f6e3b358', 'region': 'us-east-1', 'eniId': 'eni-d18010c94d601fb03', 'route': '10.99.0.0/16', 'mode': 'primary'}\n\
             {'index': '7', 'routeTableId': 'rtb-0a1b2c3d4e5f60718', 'region': 'us-west-2', 'eniId': 'eni-0a1b2c3d4e5f60718', 'mode': 'secondary'}\n",
        )
        .expect("node_file");
        std::fs::write(
            m.home.join(".bashrc"),
            "alias create_node=create_node.py\nalias show_node=show_node.py\n",
        )
        .expect("bashrc");
        Legacy {
            server,
            cron_line,
            unit,
        }
    }

    fn running(&mut self) -> bool {
        self.server.try_wait().expect("try_wait").is_none()
    }
}

impl Drop for Legacy {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

#[test]
fn install_takes_over_from_the_original_python_package() {
    let m = Machine::new(true);
    let mut old = Legacy::new(&m);
    let pid = old.server.id();
    let legacy_unit = old.unit.clone();
    let install = |extra: &[&str]| {
        let out = m
            .command(Path::new("/bin/sh"))
            .env("CSR_HA_LEGACY_UNIT", &legacy_unit)
            .arg(repo().join("scripts/install.sh"))
            .args(["--prefix", m.prefix.to_str().expect("utf-8")])
            .args(["--bin-dir", bin_dir().to_str().expect("utf-8")])
            .args(["--scope", "user"])
            .args(extra)
            .output_retrying()
            .expect("install.sh");
        assert_ok(&out, "install.sh");
        stdout(&out)
    };

    // --dry-run names every piece and changes nothing.
    let before = m.snapshot(true);
    let cron_before = m.crontab();
    let said = install(&["--dry-run"]);
    for want in [
        format!(
            "dry-run: would stop, disable and remove the original's unit {}",
            old.unit.display()
        ),
        format!("dry-run: would stop the original's server, pid {pid}: sh "),
        format!(
            "dry-run: would remove the original's socket {}",
            m.ha_dir().join("sock_file").display()
        ),
        format!(
            "dry-run: would replace the original's cron line: {}",
            old.cron_line
        ),
        "node_file holds 2 node(s) in the original's format".to_string(),
        // No --cloud: the original's nodes have no cloud key, so they are AWS nodes.
        "cloud aws, as the original's node_file says".to_string(),
    ] {
        assert!(said.contains(&want), "no {want:?} in:\n{said}");
    }
    assert_eq!(diff(&before, &m.snapshot(true)), Vec::<String>::new());
    assert_eq!(m.crontab(), cron_before);
    assert!(old.running(), "--dry-run stopped the original's server");

    // The real run: each piece replaced or removed, reported in one line.
    let said = install(&["--service", "ha_api"]);
    for want in [
        format!(
            "replaced the original's unit: stopped, disabled and removed {}",
            old.unit.display()
        ),
        format!("stopped the original's server, pid {pid}: sh "),
        format!(
            "removed the original's socket {}",
            m.ha_dir().join("sock_file").display()
        ),
        format!("replaced the original's cron line: {}", old.cron_line),
        "kept the original's lines in".to_string(),
    ] {
        assert!(said.contains(&want), "no {want:?} in:\n{said}");
    }
    let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while old.running() && std::time::Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(!old.running(), "the original's server still runs");
    assert!(!old.unit.exists());
    assert!(!m.ha_dir().join("sock_file").exists());
    assert!(m
        .calls()
        .contains(&"systemctl disable --now csr_ha.service".to_string()));
    let cron = m.crontab().expect("crontab");
    assert!(cron.starts_with("0 1 * * * /usr/bin/backup.sh\n"), "{cron}");
    assert_eq!(cron.matches("revert_nodes.sh").count(), 1, "{cron}");
    assert!(cron.contains("# csr_ha: revert"), "{cron}");
    assert!(read(&m.home.join(".bashrc")).contains("alias create_node=create_node.py"));
    assert_eq!(read(&m.ha_dir().join("cloud")), "aws\n");

    // Our server (started by ha_api) imported the original's nodes.
    let out = m
        .command(&m.prefix.join("bin/show_node.py"))
        .env("CSR_HA_DIR", m.ha_dir())
        .args(["-i", "all"])
        .output_retrying()
        .expect("show_node.py");
    assert_ok(&out, "show_node.py -i all");
    let shown = stdout(&out);
    assert!(
        shown.contains("routeTableId   rtb-c8bb373c6f6e3b358")
            && shown.contains("routeTableId   rtb-0a1b2c3d4e5f60718"),
        "{shown}"
    );
    assert!(m.ha_dir().join("node_file.orig").is_file());

    // A second run finds nothing of the original left.
    let said = install(&["--service", "ha_api"]);
    assert!(!said.contains("original's"), "{said}");
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
    let said = as_nobody(
        &repo().join("scripts/install.sh"),
        &[
            "--prefix",
            m.prefix.to_str().expect("utf-8"),
            "--bin-dir",
            bin_dir().to_str().expect("utf-8"),
        ],
    );
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
    let out = m.install(&["--dry-run", "--verify-every", "60"]);
    let said = stdout(&out);
    assert!(said.contains("dry-run: would install"), "{said}");
    assert!(said.contains("0 */1 * * *"), "{said}");
    assert!(said.contains("200: dry run done"), "{said}");
    assert_eq!(diff(&before, &m.snapshot(true)), Vec::<String>::new());
    for call in m.calls() {
        assert!(
            call == "crontab -l" || call.ends_with("is-system-running"),
            "dry run ran {call:?}"
        );
    }
}

#[test]
fn install_refuses_bad_options_before_changing_anything() {
    let m = Machine::new(false);
    for args in [
        vec!["--cloud", "openstack"],
        vec!["--verify-every", "90"],
        vec!["--verify-every", "abc"],
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

// ---------------------------------------------------------------------------------------------
// Cron scripts

/// A fake node_event that records its arguments and answers as told.
fn fake_node_event(m: &Machine, reply: &str, code: i32) -> PathBuf {
    let dir = m.root.join("fakebin");
    std::fs::create_dir_all(&dir).expect("mkdir");
    write_exec(
        &dir.join("node_event"),
        &format!("#!/bin/sh\necho \"$*\" >> \"$FAKE_DIR/node_event\"\nprintf '%s\\n' '{reply}'\nexit {code}\n"),
    );
    dir
}

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

// ---------------------------------------------------------------------------------------------
// Debug bundle

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

    let out = m
        .command(Path::new("/bin/sh"))
        .arg(repo().join("scripts/debug_bundle.sh"))
        .args(["-o", out_dir.to_str().expect("utf-8")])
        .env("CSR_HA_DIR", &ha)
        .env("CSR_HA_BIN", bin_dir())
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
    ] {
        assert!(files.contains_key(want), "{want} missing from {files:?}");
    }
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
fn install_builds_with_cargo_release_when_no_bin_dir_is_given() {
    let m = Machine::new(false);
    // A fake cargo that records its arguments; the "build output" is the test binaries.
    let target = m.root.join("target");
    std::fs::create_dir_all(target.join("release")).expect("mkdir");
    for name in [
        "ha_server",
        "ha_api",
        "ha_event_handler",
        "create_node",
        "set_params",
        "clear_params",
        "delete_node",
        "show_node",
        "node_event",
    ] {
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
