//! A machine for deployment tests: a temporary HOME and prefix where the `bin/` wrappers,
//! `csr_ha_setup` (through `scripts/install.sh`), the cron scripts and `debug_bundle.sh` run for
//! real. systemd, crontab and loginctl are fakes that record their calls (the scripts take them
//! from `CSR_HA_SYSTEMCTL`, `CSR_HA_CRONTAB`, `CSR_HA_LOGINCTL`); the binaries are the ones
//! cargo built for this test run, copied with `install.sh --bin-dir`, so no release build is
//! needed. [`Legacy`] is what the original Python package left on a router.

// What the deployment tests use, so `use util::machine::*;` is their one import.
pub use std::collections::BTreeMap;
pub use std::os::unix::fs::{MetadataExt, PermissionsExt};
pub use std::path::{Path, PathBuf};
pub use std::process::{Command, Output, Stdio};

pub use super::{bin, write_exec, OutputRetry};
use std::hash::{DefaultHasher, Hasher};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The directory holding the binaries built for this test run.
pub fn bin_dir() -> PathBuf {
    bin("ha_server").parent().expect("bin dir").to_path_buf()
}

pub const WRAPPERS: [&str; 10] = [
    "create_node",
    "set_params",
    "clear_params",
    "delete_node",
    "show_node",
    "node_event",
    "ha_api",
    "set_default_aad_app",
    "clear_default_aad_app",
    "show_auth_applications",
];

pub const FAKE_CRONTAB: &str = r#"#!/bin/sh
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
pub const FAKE_SYSTEMCTL: &str = r#"#!/bin/sh
echo "systemctl $*" >> "$FAKE_DIR/calls"
case "$*" in
  *is-system-running*) echo "$FAKE_SYSTEMD"; [ "$FAKE_SYSTEMD" = running ] ;;
  *) exit 0 ;;
esac
"#;

pub const FAKE_LOGINCTL: &str = "#!/bin/sh\necho \"loginctl $*\" >> \"$FAKE_DIR/calls\"\n";

/// A temporary machine: HOME, an install prefix, fake systemctl/crontab/loginctl.
pub struct Machine {
    pub _tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub home: PathBuf,
    pub prefix: PathBuf,
    pub fake: PathBuf,
    pub elsewhere: PathBuf,
    pub systemd: bool,
}

impl Machine {
    pub fn new(systemd: bool) -> Machine {
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

    pub fn ha_dir(&self) -> PathBuf {
        self.home.join("cloud").join("HA")
    }

    /// A command with nothing from this process's environment but a plain PATH.
    pub fn command(&self, program: &Path) -> Command {
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
            // Rotated logs stay in the machine's HA directory, never on a real /bootflash.
            .env("CSR_HA_LOG_ARCHIVE_DIR", "none")
            // Even a system-scope install must never reach the real /etc/systemd/system.
            .env(
                "CSR_HA_SYSTEM_UNIT_DIR",
                self.root.join("etc-systemd-system"),
            )
            .current_dir(&self.elsewhere)
            .stdin(Stdio::null());
        cmd
    }

    pub fn script(&self, name: &str, args: &[&str]) -> Output {
        self.command(Path::new("/bin/sh"))
            .arg(repo().join("scripts").join(name))
            .args(args)
            .output_retrying()
            .expect("run script")
    }

    pub fn install(&self, extra: &[&str]) -> Output {
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

    pub fn uninstall(&self, extra: &[&str]) -> Output {
        let out = self
            .command(&self.prefix.join("share/csr_ha/uninstall.sh"))
            .args(extra)
            .output_retrying()
            .expect("run uninstall.sh");
        assert_ok(&out, "uninstall.sh");
        out
    }

    /// Runs an installed command by full path from another directory.
    pub fn installed(&self, name: &str, args: &[&str]) -> Output {
        self.command(&self.prefix.join("bin").join(name))
            .args(args)
            .output_retrying()
            .expect("run installed command")
    }

    pub fn calls(&self) -> Vec<String> {
        read(&self.fake.join("calls"))
            .lines()
            .map(str::to_string)
            .collect()
    }

    pub fn clear_calls(&self) {
        let _ = std::fs::remove_file(self.fake.join("calls"));
    }

    pub fn crontab(&self) -> Option<String> {
        std::fs::read_to_string(self.fake.join("crontab.table")).ok()
    }

    /// Everything under the machine's root except the fakes' call log, the server's log and
    /// event files (which record time passing, not installation state).
    pub fn snapshot(&self, with_times: bool) -> BTreeMap<String, String> {
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

pub fn walk(root: &Path, dir: &Path, with_times: bool, out: &mut BTreeMap<String, String>) {
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

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

pub fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn assert_ok(out: &Output, what: &str) {
    assert!(out.status.success(), "{what} failed: {}", text(out));
}

pub fn diff(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> Vec<String> {
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

/// What the original Python package (csr_ha 2.0.2) left on a router, in a Machine: a cron line,
/// a unit with `ExecStart=… ha_server.py start`, `sock_file`, a Python-format `node_file`, the
/// `.bashrc` aliases and a running stand-in `…/csr_ha/server/ha_server.py start`.
pub struct Legacy {
    pub server: std::process::Child,
    pub cron_line: String,
    pub unit: PathBuf,
}

impl Legacy {
    pub fn new(m: &Machine) -> Legacy {
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

    pub fn running(&mut self) -> bool {
        self.server.try_wait().expect("try_wait").is_none()
    }
}

impl Drop for Legacy {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

/// A fake node_event that records its arguments and answers as told.
pub fn fake_node_event(m: &Machine, reply: &str, code: i32) -> PathBuf {
    let dir = m.root.join("fakebin");
    std::fs::create_dir_all(&dir).expect("mkdir");
    write_exec(
        &dir.join("node_event"),
        &format!("#!/bin/sh\necho \"$*\" >> \"$FAKE_DIR/node_event\"\nprintf '%s\\n' '{reply}'\nexit {code}\n"),
    );
    dir
}
