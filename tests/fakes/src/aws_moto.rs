//! moto (the AWS emulator from PyPI) on loopback, and a fresh VPC per test.
//!
//! `scripts/setup_venv.sh` installs it into `<repo>/.venv`; `CSR_HA_MOTO_SERVER` may point at
//! another `moto_server`. Each server runs under a small `sh` that kills it when its stdin
//! closes, so a server outlives neither its [`Moto`] guard nor the test process.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use csr_ha::cloud::aws::{Credentials, Ec2Client};
use csr_ha::cloud::http::{Client, Service};

/// Keys for a moto that does not check signatures (it accepts any).
pub fn any_keys() -> Credentials {
    Credentials::new("AKIAMOTOTESTKEY00001", "moto-does-not-check-this", None)
}

pub fn moto_server() -> PathBuf {
    let path = match std::env::var_os("CSR_HA_MOTO_SERVER") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => crate::repo_root().join(".venv/bin/moto_server"),
    };
    assert!(
        path.is_file(),
        "moto_server not found at {}: run scripts/setup_venv.sh (or set CSR_HA_MOTO_SERVER)",
        path.display()
    );
    path
}

/// A running moto_server; stopped on drop.
pub struct Moto {
    child: Option<Child>,
    pub endpoint: String,
    log: PathBuf,
}

impl Moto {
    /// Starts moto on a free loopback port with `env` added and waits until it accepts.
    pub fn start(env: &[(&str, &str)]) -> Moto {
        Moto::launch(env, None)
    }

    /// Starts moto serving HTTPS with this certificate and key (PEM files).
    pub fn start_tls(cert: &Path, key: &Path) -> Moto {
        Moto::launch(&[], Some((cert, key)))
    }

    fn launch(env: &[(&str, &str)], tls: Option<(&Path, &Path)>) -> Moto {
        let server = moto_server();
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        // In the target directory: the shared server never drops, so its log stays there.
        let dir = option_env!("CARGO_TARGET_TMPDIR")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let log = dir.join(format!("moto_{}_{port}.log", std::process::id()));
        let log_file = std::fs::File::create(&log).expect("moto log file");
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(r#""$MOTO_SERVER" -H 127.0.0.1 -p "$MOTO_PORT" "$@" & m=$!; cat >/dev/null; kill "$m"; wait "$m""#)
            .arg("moto")
            .env("MOTO_SERVER", &server)
            .env("MOTO_PORT", port.to_string())
            .stdin(Stdio::piped())
            .stdout(log_file.try_clone().expect("log fd"))
            .stderr(log_file);
        for (k, v) in env {
            command.env(k, v);
        }
        let scheme = match tls {
            Some((cert, key)) => {
                command.arg("-c").arg(cert).arg("-k").arg(key);
                "https"
            }
            None => "http",
        };
        let child = command.spawn().expect("start moto_server");
        let moto = Moto {
            child: Some(child),
            endpoint: format!("{scheme}://127.0.0.1:{port}"),
            log,
        };
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if started.elapsed() > Duration::from_secs(60) {
                panic!(
                    "moto_server did not listen on port {port} within 60 s: {}",
                    moto.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        moto
    }

    pub fn log_text(&self) -> String {
        let mut text = String::new();
        let _ = std::fs::File::open(&self.log).and_then(|mut f| f.read_to_string(&mut text));
        text
    }

    pub fn client(&self, keys: Credentials) -> Ec2Client {
        self.client_through(Client::new(Service::Aws), keys)
    }

    fn client_through(&self, http: Client, keys: Credentials) -> Ec2Client {
        Ec2Client::new(http, &self.endpoint, "us-east-1", keys).expect("client")
    }

    /// A Python snippet run with the venv's boto3 (moto's), its stdout. In it, `client(name,
    /// key_id, secret, token=None)` is a boto3 client of this moto in us-east-1 (the keys
    /// default to [`any_keys`]). For what the provider itself never calls: IAM, and STS as a
    /// test prepares it.
    pub fn boto3(&self, code: &str) -> String {
        let keys = any_keys();
        let script = format!(
            "import boto3\n\
             def client(name, key_id='{}', secret='{}', token=None):\n    \
             return boto3.client(name, endpoint_url='{}', region_name='us-east-1', \
             aws_access_key_id=key_id, aws_secret_access_key=secret, aws_session_token=token)\n\
             {code}\n",
            keys.access_key_id,
            keys.secret_access_key.expose(),
            self.endpoint,
        );
        let out = isolated_boto3(Command::new(python()).args(["-c", &script]))
            .output()
            .expect("python");
        assert!(
            out.status.success(),
            "boto3: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// A client of a moto over HTTPS that trusts the CA in `ca` (a PEM file), whatever this
    /// process's environment names.
    pub fn client_trusting(&self, keys: Credentials, ca: &str) -> Ec2Client {
        let http = Client::with_env(Service::Aws, &|name| {
            (name == "CSR_HA_CA_BUNDLE").then(|| ca.to_string())
        });
        self.client_through(http, keys)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            drop(child.stdin.take());
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

/// One moto shared by the tests of a file that need no signature checks; each test builds its
/// own VPC in it. It dies with the test process (its stdin closes).
pub fn shared() -> &'static Moto {
    static MOTO: std::sync::OnceLock<Moto> = std::sync::OnceLock::new();
    MOTO.get_or_init(|| Moto::start(&[]))
}

pub fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(20)
}

/// The first `<tag>value</tag>` in `xml`.
pub fn tag(xml: &str, tag: &str) -> String {
    let open = format!("<{tag}>");
    let start = xml
        .find(&open)
        .unwrap_or_else(|| panic!("no <{tag}> in {xml}"))
        + open.len();
    let end = xml[start..]
        .find(&format!("</{tag}>"))
        .expect("closing tag")
        + start;
    xml[start..end].to_string()
}

/// A VPC with a subnet, two network interfaces and a route table holding:
/// the local routes, `0.0.0.0/0` via an internet gateway, `10.99.0.0/16` and `10.98.0.0/16`
/// via `eni_b`, and `2001:db8:1234::/48` via `eni_b`.
pub struct Vpc {
    pub vpc: String,
    pub rtb: String,
    pub eni_a: String,
    pub eni_b: String,
    pub igw: String,
}

pub const V4_ROUTE: &str = "10.99.0.0/16";
pub const V4_OTHER: &str = "10.98.0.0/16";
pub const V6_ROUTE: &str = "2001:db8:1234::/48";

impl Vpc {
    pub fn create(ec2: &Ec2Client) -> Vpc {
        let call = |action: &str, params: &[(&str, &str)]| {
            ec2.call(action, params, deadline())
                .unwrap_or_else(|e| panic!("{action}: {e}"))
        };
        let vpc = tag(
            &call(
                "CreateVpc",
                &[
                    ("CidrBlock", "10.0.0.0/16"),
                    ("AmazonProvidedIpv6CidrBlock", "true"),
                ],
            ),
            "vpcId",
        );
        let subnet = tag(
            &call(
                "CreateSubnet",
                &[("VpcId", &vpc), ("CidrBlock", "10.0.1.0/24")],
            ),
            "subnetId",
        );
        let eni_a = tag(
            &call("CreateNetworkInterface", &[("SubnetId", &subnet)]),
            "networkInterfaceId",
        );
        let eni_b = tag(
            &call("CreateNetworkInterface", &[("SubnetId", &subnet)]),
            "networkInterfaceId",
        );
        let rtb = tag(
            &call("CreateRouteTable", &[("VpcId", &vpc)]),
            "routeTableId",
        );
        let igw = tag(&call("CreateInternetGateway", &[]), "internetGatewayId");
        call(
            "AttachInternetGateway",
            &[("InternetGatewayId", &igw), ("VpcId", &vpc)],
        );
        call(
            "CreateRoute",
            &[
                ("RouteTableId", &rtb),
                ("DestinationCidrBlock", "0.0.0.0/0"),
                ("GatewayId", &igw),
            ],
        );
        for dest in [V4_ROUTE, V4_OTHER] {
            call(
                "CreateRoute",
                &[
                    ("RouteTableId", &rtb),
                    ("DestinationCidrBlock", dest),
                    ("NetworkInterfaceId", &eni_b),
                ],
            );
        }
        call(
            "CreateRoute",
            &[
                ("RouteTableId", &rtb),
                ("DestinationIpv6CidrBlock", V6_ROUTE),
                ("NetworkInterfaceId", &eni_b),
            ],
        );
        Vpc {
            vpc,
            rtb,
            eni_a,
            eni_b,
            igw,
        }
    }
}

/// One route as moto reports it, read with a parser independent of the provider's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MotoRoute {
    pub destination: String,
    pub eni: Option<String>,
    pub gateway: Option<String>,
}

/// The routes of `rtb` according to moto.
pub fn routes(ec2: &Ec2Client, rtb: &str) -> Vec<MotoRoute> {
    let body = ec2
        .call(
            "DescribeRouteTables",
            &[("RouteTableId.1", rtb)],
            deadline(),
        )
        .unwrap_or_else(|e| panic!("DescribeRouteTables: {e}"));
    let find = |chunk: &str, name: &str| {
        let open = format!("<{name}>");
        let start = chunk.find(&open)? + open.len();
        let end = chunk[start..].find('<')? + start;
        Some(chunk[start..end].to_string())
    };
    body.split("<item>")
        .filter_map(|chunk| {
            let chunk = chunk.split("</item>").next().unwrap_or(chunk);
            let destination = find(chunk, "destinationCidrBlock")
                .or_else(|| find(chunk, "destinationIpv6CidrBlock"))?;
            Some(MotoRoute {
                destination,
                eni: find(chunk, "networkInterfaceId"),
                gateway: find(chunk, "gatewayId"),
            })
        })
        .collect()
}

/// The ENI `destination` points at in moto.
pub fn eni_of(ec2: &Ec2Client, rtb: &str, destination: &str) -> Option<String> {
    routes(ec2, rtb)
        .into_iter()
        .find(|r| r.destination == destination)
        .unwrap_or_else(|| panic!("no route {destination} in {rtb}"))
        .eni
}

/// The venv's Python, which has boto3 (`scripts/setup_venv.sh`).
pub fn python() -> PathBuf {
    moto_server().with_file_name("python3")
}

/// `boto3` in `cmd` sees none of this machine's AWS profiles, files, metadata service or proxies:
/// it talks to moto with the keys its script names, and nothing else.
pub fn isolated_boto3(cmd: &mut Command) -> &mut Command {
    cmd.env_remove("AWS_PROFILE")
        .env_remove("AWS_DEFAULT_PROFILE")
        .env("AWS_CONFIG_FILE", "/nonexistent/config")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    for proxy in [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        cmd.env_remove(proxy);
    }
    cmd
}
