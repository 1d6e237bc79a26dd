//! Test helpers, compiled once for the one test binary: a fresh HA directory, a real
//! `ha_server` process and the real client binaries here; the loopback fakes of each cloud,
//! moto, the latency proxy and the deployment machine in the submodules.

pub mod aws_run;
pub mod azure_run;
pub mod builders;
pub mod connect_proxy;
pub mod gcp_run;
pub mod machine;
pub mod netns;
pub mod outcomes;
pub mod tls;

pub use csr_ha_fakes::{aws_fakes, aws_moto, azure_fake, gcp_fake, latency_proxy, loopback};

pub use builders::{node, with_params, work};
pub use outcomes::{assert_ends, assert_outcome, assert_outcome_says, assert_says, assert_starts};

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The binary `name`: this build's, or those in `CSR_HA_TEST_BIN_DIR` (scripts/test_package.sh
/// runs the router-network tests with the installed wheel's binaries that way).
pub fn bin(name: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os("CSR_HA_TEST_BIN_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join(name);
    }
    let dir = PathBuf::from(env!("CARGO_BIN_EXE_ha_server"));
    dir.parent().expect("bin dir").join(name)
}

/// Every cloud and metadata endpoint points at a closed loopback port unless a test points it
/// at its own fake (`with_env` comes later and wins): a node a test makes complete for a cloud
/// can never send its live check or an event to a real cloud or metadata address.
/// (`AWS_ENDPOINT_URL_EC2`, which would win over a test's `AWS_ENDPOINT_URL`, is removed
/// instead.)
pub const OFFLINE: [(&str, &str); 7] = [
    ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
    ("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:9"),
    ("CSR_HA_AZURE_ARM_ENDPOINT", "http://127.0.0.1:9"),
    ("CSR_HA_AZURE_LOGIN_ENDPOINT", "http://127.0.0.1:9"),
    ("CSR_HA_AZURE_IMDS_ENDPOINT", "http://127.0.0.1:9"),
    ("CSR_HA_GCP_COMPUTE_ENDPOINT", "http://127.0.0.1:9"),
    ("GCE_METADATA_HOST", "127.0.0.1:9"),
];

/// One HA directory with (optionally) a running server.
pub struct Ha {
    _tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub server: Option<Child>,
    pub env: Vec<(String, String)>,
    /// Variables of this process the server and clients must not inherit.
    pub unset: Vec<String>,
    /// The network namespace the server and clients run in (`ip netns exec`), if not ours.
    pub netns: Option<String>,
}

impl Ha {
    pub fn new() -> Ha {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("HA");
        Ha {
            _tmp: tmp,
            root,
            server: None,
            env: OFFLINE
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .chain([("CSR_HA_CLOUD".into(), "file".into())])
                // Rotated logs stay in the test's directory, never on a real /bootflash.
                .chain([("CSR_HA_LOG_ARCHIVE_DIR".into(), "none".into())])
                .collect(),
            unset: Vec::new(),
            netns: None,
        }
    }

    /// A new directory with a running server.
    pub fn started() -> Ha {
        let mut ha = Ha::new();
        ha.start();
        ha
    }

    pub fn with_env(mut self, key: &str, value: &str) -> Ha {
        // A test's general AWS endpoint is meant for EC2 too; the closed EC2-only one of
        // OFFLINE would win over it.
        if key == "AWS_ENDPOINT_URL" {
            self.env.retain(|(k, _)| k != "AWS_ENDPOINT_URL_EC2");
        }
        self.env.push((key.into(), value.into()));
        self
    }

    /// The server and the clients run without `key` (this machine exports CA bundle variables
    /// that a test meaning "none set" must take away).
    pub fn without_env(mut self, key: &str) -> Ha {
        self.env.retain(|(k, _)| k != key);
        self.unset.push(key.into());
        self
    }

    /// Replaces the event handler by a shell script with this body.
    pub fn with_handler(self, body: &str) -> Ha {
        let path = self._tmp.path().join("handler.sh");
        write_exec(&path, &format!("#!/bin/sh\n{body}\n"));
        let path = path.to_str().expect("utf8 path").to_string();
        self.with_env("CSR_HA_HANDLER", &path)
    }

    /// A scratch directory beside the HA directory.
    /// The server and its handlers keep their credential cache in a private runtime directory
    /// (`<scratch>/run`, as `XDG_RUNTIME_DIR`), removed with the test.
    pub fn with_private_runtime_dir(self) -> Ha {
        let run_dir = self.scratch().join("run");
        std::fs::create_dir_all(&run_dir).expect("mkdir");
        let run_dir = run_dir.to_str().expect("utf-8").to_string();
        self.with_env("XDG_RUNTIME_DIR", &run_dir)
    }

    pub fn scratch(&self) -> &Path {
        self._tmp.path()
    }

    /// The server and every client run in network namespace `name` (`util::netns`).
    pub fn in_netns(mut self, name: &str) -> Ha {
        self.netns = Some(name.to_string());
        self
    }

    fn command(&self, name: &str) -> Command {
        let mut cmd = match &self.netns {
            Some(netns) => {
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "exec", netns]).arg(bin(name));
                cmd
            }
            None => Command::new(bin(name)),
        };
        cmd.env("CSR_HA_DIR", &self.root)
            .env("RUST_LOG", "info")
            .env_remove("CSR_HA_TIMEOUT")
            .env_remove("AWS_ENDPOINT_URL_EC2");
        for k in &self.unset {
            cmd.env_remove(k);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Starts `ha_server` in the foreground as our child and waits until it answers.
    pub fn start(&mut self) {
        let child = self
            .command("ha_server")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ha_server");
        self.server = Some(child);
        self.wait_until_up();
    }

    pub fn wait_until_up(&self) {
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            if self.run("ha_api", &["-c", "ping"]).status.success() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("ha_server did not answer ping within 10 s");
    }

    pub fn server_pid(&self) -> u32 {
        self.server.as_ref().expect("server running").id()
    }

    /// SIGKILL, no cleanup: what a crash or power loss leaves behind.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.server.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn run(&self, name: &str, args: &[&str]) -> Output {
        self.command(name)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run command")
    }

    pub fn run_env(&self, name: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = self.command(name);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run command")
    }

    pub fn spawn(&self, name: &str, args: &[&str]) -> Child {
        self.command(name)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn")
    }

    /// Runs a command and returns stdout, asserting its exit code is `code`.
    pub fn expect(&self, code: i32, name: &str, args: &[&str]) -> String {
        let out = self.run(name, args);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(
            out.status.code(),
            Some(code),
            "{name} {args:?} exited {:?}\nstdout: {stdout}\nstderr: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    pub fn ok(&self, name: &str, args: &[&str]) -> String {
        self.expect(0, name, args)
    }

    /// Runs a command line as a user types it (`"create_node -i 1 -t t1 -n 10.0.1.20"`: words
    /// split on white space, no quoting) and returns stdout, asserting it exited 0.
    pub fn ok_line(&self, line: &str) -> String {
        self.expect_line(0, line)
    }

    /// Like [`Ha::ok_line`], asserting exit code `code`.
    pub fn expect_line(&self, code: i32, line: &str) -> String {
        let mut words = line.split_whitespace();
        let name = words.next().expect("a command line names a command");
        let args: Vec<&str> = words.collect();
        self.expect(code, name, &args)
    }

    /// `show_node -i INDEX` (`"1"`, `"all"`, `"1-3"`), asserting it exited 0.
    pub fn show(&self, index: &str) -> String {
        self.ok("show_node", &["-i", index])
    }

    /// [`Ha::ok_line`], also asserting that stdout starts with `reply` (`"200: Updated node 1"`).
    pub fn ok_starts(&self, line: &str, reply: &str) -> String {
        self.expect_starts(0, line, reply)
    }

    /// [`Ha::expect_line`], also asserting that stdout starts with `reply`.
    pub fn expect_starts(&self, code: i32, line: &str, reply: &str) -> String {
        let out = self.expect_line(code, line);
        assert!(
            out.starts_with(reply),
            "{line}: expected {reply:?} first\n{out}"
        );
        out
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// The text of the node file, where the server keeps every node.
    pub fn node_file(&self) -> String {
        std::fs::read_to_string(self.path("node_file")).expect("read node_file")
    }

    /// Writes `route_tables/<name>.json` with (destination, next hop) routes.
    pub fn table(&self, name: &str, routes: &[(&str, &str)]) {
        let dir = self.root.join("route_tables");
        std::fs::create_dir_all(&dir).expect("mkdir route_tables");
        let routes: Vec<serde_json::Value> = routes
            .iter()
            .map(|(d, n)| serde_json::json!({"destination": d, "next_hop": n}))
            .collect();
        let text = serde_json::to_string(&serde_json::json!({ "routes": routes })).expect("json");
        std::fs::write(dir.join(format!("{name}.json")), text).expect("write table");
    }

    /// The next hop of `destination` in table `name`.
    pub fn next_hop(&self, name: &str, destination: &str) -> Option<String> {
        let text =
            std::fs::read_to_string(self.root.join("route_tables").join(format!("{name}.json")))
                .ok()?;
        let value: serde_json::Value = serde_json::from_str(&text).ok()?;
        value["routes"]
            .as_array()?
            .iter()
            .find(|r| r["destination"] == destination)
            .and_then(|r| r["next_hop"].as_str().map(str::to_string))
    }

    pub fn event_files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.root.join("events"))
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| e.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }
}

impl Drop for Ha {
    /// SIGTERM first, so the server removes its FIFO and its tmpfs `replies` directory.
    fn drop(&mut self) {
        if let Some(child) = self.server.as_mut() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let until = Instant::now() + Duration::from_secs(3);
            while Instant::now() < until {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    self.server = None;
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        self.kill9();
    }
}

/// Children of `pid` that are zombies.
pub fn zombies_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            continue;
        };
        let mut fields = after.split_whitespace();
        let state = fields.next().unwrap_or("");
        let ppid: u32 = fields.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        if ppid == pid && state == "Z" {
            out.push(entry.file_name().to_string_lossy().parse().unwrap_or(0));
        }
    }
    out
}

pub fn write_exec(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).expect("write script");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// `Command::output`, retried while the program is "text file busy": a script written by this
/// test process moments ago can still be open for writing in a child that another test thread
/// forked and has not yet exec'd (the fd is close-on-exec, so the window is short).
pub trait OutputRetry {
    fn output_retrying(&mut self) -> std::io::Result<Output>;
}

impl OutputRetry for Command {
    fn output_retrying(&mut self) -> std::io::Result<Output> {
        let mut tries = 0;
        loop {
            match self.output() {
                Err(e) if e.raw_os_error() == Some(nix::libc::ETXTBSY) && tries < 50 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
                other => return other,
            }
        }
    }
}

/// `ha_event_handler` as the server runs it: `handler` (its environment set by the test, stdout
/// and stderr piped here) is handed `work` as JSON on stdin; its output once it exits.
pub fn run_handler(mut handler: Command, work: &csr_ha::work::Work) -> Output {
    use std::io::Write;
    let mut child = handler
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ha_event_handler");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(serde_json::to_string(work).expect("json").as_bytes())
        .expect("write the work");
    child.wait_with_output().expect("the handler ran")
}

/// A command for this build's `ha_event_handler` (see [`run_handler`]).
pub fn handler() -> Command {
    Command::new(bin("ha_event_handler"))
}
