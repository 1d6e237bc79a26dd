//! The router's own network shape, in three network namespaces (netns), for the tests that
//! must see what guestshell sees: the instance metadata service one routed hop away.
//!
//! ```text
//!  guestshell netns           router netns (forwards)          instance netns
//!  g0 192.168.35.102/24 ─veth─ r0 192.168.35.1/24
//!  default via .1              r1 10.0.0.1/24 ───────veth───── i0 10.0.0.2/24, default via .1
//!                              169.254.169.254 via 10.0.0.2    lo 169.254.169.254/32
//!                                                              metadata server :80 (Python):
//!                                                                token reply sent with IP_TTL =
//!                                                                the hop limit, as AWS does
//!                                                              moto (EC2) on 10.0.0.2:<port>
//! ```
//!
//! The project's binaries run in the guestshell netns (`ip netns exec`, see [`Ha::in_netns`])
//! with the **default** metadata address, which exists only in the instance netns: nothing here
//! can reach a real metadata service or cloud, and no interface or route is added to the
//! machine's own namespace (every veth is made inside the namespaces). No NAT is needed: the
//! router netns decrements the TTL, so a token reply sent with TTL 1 dies there, as it dies at
//! IOS.
//!
//! Names are unique (`csrha-<pid>-<n>-{g,r,i}`); [`Netns`]'s `Drop` kills what runs in them and
//! deletes them, on success and on panic alike, and [`Netns::new`] first removes those a killed
//! test process left behind. Where `ip netns add` is not permitted, [`Netns::new`] prints
//! `SKIPPED` and returns `None`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::aws_moto::{isolated_boto3, python};
use super::Ha;

/// The guestshell address, as on a CSR's VirtualPortGroup.
pub const GUESTSHELL: &str = "192.168.35.102";
/// The instance's address, where moto listens.
pub const INSTANCE: &str = "10.0.0.2";
/// The metadata service's address on every EC2 instance, inside the instance netns only.
pub const METADATA: &str = "169.254.169.254";

/// Whether the metadata server answers token-less reads (IMDSv1, `HttpTokens=optional`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tokens {
    Optional,
    Required,
}

/// Three namespaces, the metadata server and moto; all removed on drop.
pub struct Netns {
    prefix: String,
    children: Vec<Child>,
    dir: tempfile::TempDir,
    /// moto's endpoint, reachable from the guestshell netns.
    pub ec2: String,
}

static COUNT: AtomicU32 = AtomicU32::new(0);

fn ip(args: &[&str]) -> std::process::Output {
    Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the netns tests need the ip command (iproute2)")
}

fn ip_ok(args: &[&str]) {
    let out = ip(args);
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Namespaces named `csrha-<pid>-…` whose test process is gone: left by a killed test.
fn remove_stale() {
    let out = ip(&["netns", "list"]);
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        let Some(pid) = name
            .strip_prefix("csrha-")
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            kill_all_in(name);
            let _ = ip(&["netns", "del", name]);
        }
    }
}

fn kill_all_in(name: &str) {
    let out = ip(&["netns", "pids", name]);
    for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
        if let Ok(pid) = pid.parse::<i32>() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

impl Netns {
    /// The three namespaces with the metadata server (token replies sent with IP TTL
    /// `hop_limit`, token-less reads as `tokens` says) and moto in the instance netns; `None`,
    /// after printing `SKIPPED`, where network namespaces cannot be made.
    pub fn new(hop_limit: u8, tokens: Tokens) -> Option<Netns> {
        remove_stale();
        let prefix = format!(
            "csrha-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::SeqCst)
        );
        let probe = ip(&["netns", "add", &format!("{prefix}-g")]);
        if !probe.status.success() {
            eprintln!(
                "SKIPPED: `ip netns add` is not permitted here ({}): the router-network tests \
                 did not run",
                String::from_utf8_lossy(&probe.stderr).trim()
            );
            return None;
        }
        let mut netns = Netns {
            prefix,
            children: Vec::new(),
            dir: tempfile::tempdir().expect("tempdir"),
            ec2: String::new(),
        };
        netns.wire();
        netns.start_metadata(hop_limit, tokens);
        netns.start_moto();
        Some(netns)
    }

    /// The namespace's name: `g` guestshell, `r` router, `i` instance.
    pub fn name(&self, which: char) -> String {
        format!("{}-{which}", self.prefix)
    }

    fn wire(&self) {
        let (g, r, i) = (self.name('g'), self.name('r'), self.name('i'));
        ip_ok(&["netns", "add", &r]);
        ip_ok(&["netns", "add", &i]);
        // Both veth pairs are made inside the router netns and one end moved out: nothing
        // ever appears in the machine's own namespace.
        ip_ok(&[
            "-n", &r, "link", "add", "r0", "type", "veth", "peer", "name", "g0", "netns", &g,
        ]);
        ip_ok(&[
            "-n", &r, "link", "add", "r1", "type", "veth", "peer", "name", "i0", "netns", &i,
        ]);
        let (guestshell, metadata) = (format!("{GUESTSHELL}/24"), format!("{METADATA}/32"));
        for (ns, dev, addr) in [
            (&g, "g0", guestshell.as_str()),
            (&r, "r0", "192.168.35.1/24"),
            (&r, "r1", "10.0.0.1/24"),
            (&i, "i0", "10.0.0.2/24"),
        ] {
            ip_ok(&["-n", ns, "addr", "add", addr, "dev", dev]);
            ip_ok(&["-n", ns, "link", "set", dev, "up"]);
        }
        for ns in [&g, &r, &i] {
            ip_ok(&["-n", ns, "link", "set", "lo", "up"]);
        }
        ip_ok(&["-n", &i, "addr", "add", &metadata, "dev", "lo"]);
        ip_ok(&["-n", &g, "route", "add", "default", "via", "192.168.35.1"]);
        ip_ok(&["-n", &i, "route", "add", "default", "via", "10.0.0.1"]);
        ip_ok(&["-n", &r, "route", "add", &metadata, "via", "10.0.0.2"]);
        ip_ok(&[
            "netns",
            "exec",
            &r,
            "sysctl",
            "-q",
            "-w",
            "net.ipv4.ip_forward=1",
        ]);
    }

    /// `program args` run in namespace `which`, as a child this value kills on drop.
    fn spawn_in(&mut self, which: char, program: &Path, args: &[&str], log: &str) {
        let log = std::fs::File::create(self.dir.path().join(log)).expect("log file");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.name(which)])
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("ip netns exec");
        self.children.push(child);
    }

    fn start_metadata(&mut self, hop_limit: u8, tokens: Tokens) {
        let script = self.dir.path().join("metadata.py");
        std::fs::write(&script, METADATA_SERVER).expect("write the metadata server");
        let ready = self.dir.path().join("metadata.ready");
        let requests = self.requests_path();
        let v1 = match tokens {
            Tokens::Optional => "v1",
            Tokens::Required => "v2",
        };
        let args = [
            script.to_str().expect("utf-8"),
            &hop_limit.to_string(),
            v1,
            requests.to_str().expect("utf-8"),
            ready.to_str().expect("utf-8"),
        ]
        .map(str::to_string);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.spawn_in('i', &python(), &args, "metadata.log");
        self.wait_for(|| ready.exists(), "the metadata server", "metadata.log");
    }

    fn start_moto(&mut self) {
        let port = "5000";
        self.spawn_in(
            'i',
            &super::aws_moto::moto_server(),
            &["-H", INSTANCE, "-p", port],
            "moto.log",
        );
        self.ec2 = format!("http://{INSTANCE}:{port}");
        let probe = format!(
            "import socket; socket.create_connection(('{INSTANCE}', {port}), timeout=1).close()"
        );
        let g = self.name('g');
        self.wait_for(
            || {
                Command::new("ip")
                    .args(["netns", "exec", &g])
                    .arg(python())
                    .args(["-c", &probe])
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            },
            "moto, from the guestshell netns",
            "moto.log",
        );
    }

    fn wait_for(&self, mut ready: impl FnMut() -> bool, what: &str, log: &str) {
        let until = Instant::now() + Duration::from_secs(60);
        while !ready() {
            if Instant::now() > until {
                let log = std::fs::read_to_string(self.dir.path().join(log)).unwrap_or_default();
                panic!("{what} not ready within 60 s: {log}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn requests_path(&self) -> PathBuf {
        self.dir.path().join("metadata.requests")
    }

    /// Every request the metadata server received: (method, path, with a token).
    pub fn metadata_requests(&self) -> Vec<(String, String, bool)> {
        let text = std::fs::read_to_string(self.requests_path()).unwrap_or_default();
        text.lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .map(|v| {
                (
                    v["method"].as_str().unwrap_or_default().to_string(),
                    v["path"].as_str().unwrap_or_default().to_string(),
                    v["token"].as_bool().unwrap_or(false),
                )
            })
            .collect()
    }

    /// Token requests (`PUT /latest/api/token`) so far.
    pub fn token_requests(&self) -> usize {
        self.metadata_requests()
            .iter()
            .filter(|(method, _, _)| method == "PUT")
            .count()
    }

    /// Reads without a token (IMDSv1) so far.
    pub fn tokenless_reads(&self) -> usize {
        self.metadata_requests()
            .iter()
            .filter(|(method, _, token)| method == "GET" && !token)
            .count()
    }

    /// A Python (boto3) snippet run in the guestshell netns against moto, its stdout.
    /// `ec2` is a client of moto there.
    pub fn boto3(&self, code: &str) -> String {
        let script = format!(
            "import boto3\nec2 = boto3.client('ec2', endpoint_url='{}', region_name='us-east-1', \
             aws_access_key_id='AKIAMOTOTESTKEY00001', aws_secret_access_key='x')\n{code}\n",
            self.ec2
        );
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name('g')])
            .arg(python())
            .args(["-c", &script]);
        let out = isolated_boto3(&mut cmd).output().expect("python");
        assert!(
            out.status.success(),
            "boto3: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// A VPC in moto with route table `rtb` whose 10.99.0.0/16 points at `eni_b`:
    /// `(rtb, eni_a, eni_b)`.
    pub fn vpc(&self) -> (String, String, String) {
        let out = self.boto3(
            "vpc = ec2.create_vpc(CidrBlock='10.0.0.0/16')['Vpc']['VpcId']\n\
             sub = ec2.create_subnet(VpcId=vpc, CidrBlock='10.0.1.0/24')['Subnet']['SubnetId']\n\
             a = ec2.create_network_interface(SubnetId=sub)['NetworkInterface']['NetworkInterfaceId']\n\
             b = ec2.create_network_interface(SubnetId=sub)['NetworkInterface']['NetworkInterfaceId']\n\
             rtb = ec2.create_route_table(VpcId=vpc)['RouteTable']['RouteTableId']\n\
             ec2.create_route(RouteTableId=rtb, DestinationCidrBlock='10.99.0.0/16', NetworkInterfaceId=b)\n\
             print(rtb, a, b)",
        );
        let parts: Vec<String> = out.split_whitespace().map(str::to_string).collect();
        assert_eq!(parts.len(), 3, "{out}");
        (parts[0].clone(), parts[1].clone(), parts[2].clone())
    }

    /// The ENI `destination` points at in `rtb`, as moto has it.
    pub fn eni_of(&self, rtb: &str, destination: &str) -> String {
        self.boto3(&format!(
            "t = ec2.describe_route_tables(RouteTableIds=['{rtb}'])['RouteTables'][0]\n\
             print([r.get('NetworkInterfaceId', '') for r in t['Routes'] \
             if r.get('DestinationCidrBlock') == '{destination}'][0])"
        ))
    }

    /// An HA directory whose server and clients run in the guestshell netns, for AWS at moto,
    /// with the instance role from the **default** metadata address and no other credentials.
    pub fn ha(&self) -> Ha {
        let mut ha = Ha::new()
            .in_netns(&self.name('g'))
            .without_env("AWS_EC2_METADATA_SERVICE_ENDPOINT")
            .with_env("CSR_HA_CLOUD", "aws")
            .with_env("AWS_ENDPOINT_URL", &self.ec2)
            .with_env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
            .with_env("AWS_CONFIG_FILE", "/nonexistent/config")
            .with_env("CSR_HA_REPLIES_TMPFS", "0");
        for var in [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_PROFILE",
            "AWS_DEFAULT_PROFILE",
            "AWS_ENDPOINT_URL_STS",
            "AWS_EC2_METADATA_DISABLED",
            "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE",
            "AWS_METADATA_SERVICE_TIMEOUT",
            "AWS_METADATA_SERVICE_NUM_ATTEMPTS",
            "AWS_EC2_METADATA_V1_DISABLED",
            "HTTPS_PROXY",
            "https_proxy",
            "HTTP_PROXY",
            "http_proxy",
            "ALL_PROXY",
            "all_proxy",
        ] {
            ha = ha.without_env(var);
        }
        ha.start();
        ha
    }
}

impl Drop for Netns {
    /// Kills the servers and everything else in the namespaces, then deletes them.
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for which in ['g', 'r', 'i'] {
            let name = self.name(which);
            kill_all_in(&name);
            let _ = ip(&["netns", "del", &name]);
        }
    }
}

/// The fake metadata service: `metadata.py HOP_LIMIT v1|v2 REQUESTS_FILE READY_FILE`. The reply
/// to the token `PUT` leaves with IP TTL = HOP_LIMIT (what AWS does with
/// `HttpPutResponseHopLimit`); every request is appended to REQUESTS_FILE as a JSON line.
const METADATA_SERVER: &str = r#"
import http.server, json, socket, socketserver, sys, threading
hop, mode, requests, ready = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
lock, tokens = threading.Lock(), set()
ROLES = '/latest/meta-data/iam/security-credentials/'
def record(**fields):
    with lock, open(requests, 'a') as f:
        f.write(json.dumps(fields) + '\n')
class Handler(http.server.BaseHTTPRequestHandler):
    def answer(self, status, body, ttl=None):
        if ttl is not None:
            self.connection.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
        data = body.encode()
        self.send_response(status)
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def do_PUT(self):
        self.rfile.read(int(self.headers.get('Content-Length') or 0))
        record(method='PUT', path=self.path, token=False)
        if self.path != '/latest/api/token':
            return self.answer(404, '')
        with lock:
            token = 'netns-token-%d' % len(tokens)
            tokens.add(token)
        self.answer(200, token, ttl=hop)
    def do_GET(self):
        token = self.headers.get('X-aws-ec2-metadata-token')
        record(method='GET', path=self.path, token=token is not None)
        if (token is None and mode != 'v1') or (token is not None and token not in tokens):
            return self.answer(401, '')
        if self.path == ROLES:
            return self.answer(200, 'csr-ha-role')
        if self.path == ROLES + 'csr-ha-role':
            return self.answer(200, json.dumps({
                'Code': 'Success', 'Type': 'AWS-HMAC', 'AccessKeyId': 'ASIANETNSROLE0001',
                'SecretAccessKey': 'netns-role-secret', 'Token': 'netns-role-session',
                'Expiration': '2999-01-01T00:00:00Z'}))
        self.answer(404, '')
    def log_message(self, *args):
        pass
class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
server = Server(('169.254.169.254', 80), Handler)
open(ready, 'w').close()
server.serve_forever()
"#;
