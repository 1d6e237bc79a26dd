//! Failover timings of the AWS provider against moto on loopback, with the API calls made.
//!
//! ```text
//! scripts/setup_venv.sh            # or CSR_HA_MOTO_SERVER=<path to moto_server>
//! cargo build --release --bins && cargo run --release --example aws_moto_bench [-- ROUNDS]
//! ```
//!
//! Everything runs on 127.0.0.1: moto, a counting proxy in front of it, and (part 2) a real
//! `ha_server` with `CSR_HA_CLOUD=aws` in a temporary `CSR_HA_DIR`.
//!
//! 1. Library (what one `ha_event_handler` does, no server or processes): `peerFail` on one
//!    node (`-r`), alternating two routers, until a separate read shows the new ENI; `revert` of
//!    200 primary nodes sharing one table, then again with nothing to move. Calls counted by the
//!    provider's client.
//! 2. Through the server, as a router runs it: `node_event -i N -e peerFail` processes
//!    alternating N = 1, 2 (two nodes with different ENIs on one route), timed from spawning
//!    the process (a) until a poller reading moto directly sees the new ENI, and to the
//!    process's exit; and (b) without the poller, to the process's exit, then confirmed by one
//!    read. Then
//!    `node_event -i all -e revert` of 200 primary nodes in one table (a fresh server).
//!    The server's `AWS_ENDPOINT_URL` is a front of the latency proxy
//!    (`tests/fakes/src/latency_proxy.rs`) at no delay, which records each HTTP request on its way
//!    to moto with its `Action=`; the bench's own reads and set-up go to moto directly and are
//!    not counted.

#[path = "support/mod.rs"]
mod support;

use csr_ha_fakes::{aws_moto, latency_proxy};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process};
use std::time::{Duration, Instant};

use csr_ha::client;
use csr_ha::cloud::apply;
use csr_ha::cloud::aws::{AwsConfig, CredentialSources, Ec2Client, Ec2Table};
use csr_ha::event::EventKind;
use csr_ha::event_log::EventLog;
use csr_ha::node::{Node, NodeIndex, Param, Provider};
use csr_ha::paths::HaDir;
use csr_ha::protocol::Command;
use csr_ha::protocol::Status;
use csr_ha::work::{Action, NodeOutcome, Work};
use latency_proxy::{Kind, Latency};
use support::{ms, num};

const REVERT_NODES: u16 = 200;
const REVERT_RUNS: usize = 5;

fn node(index: u16, rtb: &str, eni: &str, route: &str) -> Node {
    let mut node = Node::new(NodeIndex::new(index).expect("index"), Provider::Aws);
    for (param, value) in [
        (Param::RouteTableId, rtb),
        (Param::Region, "us-east-1"),
        (Param::EniId, eni),
        (Param::Mode, "primary"),
        (Param::Route, route),
    ] {
        node.set(param, param.validate(value, Provider::Aws).expect("valid"));
    }
    node
}

/// Runs one handler's work as `ha_event_handler` would; returns outcomes and HTTP calls made.
fn handle(
    kind: EventKind,
    dir: &Path,
    config: &AwsConfig,
    nodes: Vec<Node>,
) -> (Vec<NodeOutcome>, u32) {
    let work = Work {
        action: Action::Event(kind),
        provider: Provider::Aws,
        ha_dir: dir.display().to_string(),
        deadline_ms: 30_000,
        nodes,
    };
    let deadline = Instant::now() + Duration::from_millis(work.deadline_ms);
    let mut log = EventLog::new(&work);
    let mut table = Ec2Table::open(&work, deadline, config).expect("open table");
    let outcomes = apply(&mut table, &work, &mut log);
    log.finish(&outcomes);
    (outcomes, table.calls())
}

/// Median and p90 (nearest rank) of `times`, in ms.
fn stats(times: &[Duration]) -> (f64, f64) {
    let mut t = times.to_vec();
    t.sort();
    let rank = |p: f64| support::nearest_rank(&t, p).map_or(f64::NAN, ms);
    (rank(0.5), rank(0.9))
}

/// The latency proxy at no delay in front of moto, counting the server's EC2 calls by action.
struct CountingProxy {
    endpoint: String,
    latency: Latency,
}

impl CountingProxy {
    fn start(moto_endpoint: &str) -> CountingProxy {
        let latency = Latency::new(Duration::ZERO);
        let endpoint = latency.front("moto", moto_endpoint, |_, _| Kind::Api).url;
        CountingProxy { endpoint, latency }
    }

    /// The counts since the last call, by action (`?` for a request without one).
    fn take(&self) -> BTreeMap<String, u32> {
        let mut counts = BTreeMap::new();
        for request in self.latency.take().requests {
            *counts
                .entry(request.action.unwrap_or_else(|| "?".into()))
                .or_default() += 1;
        }
        counts
    }
}

/// Calls per event by action, e.g. `2 per event (1 DescribeRouteTables + 1 ReplaceRoute)`.
fn fmt_counts(counts: &BTreeMap<String, u32>, events: usize) -> String {
    let per = |n: u32| num(f64::from(n) / events as f64);
    let total: u32 = counts.values().sum();
    let parts: Vec<String> = counts
        .iter()
        .map(|(action, n)| format!("{} {action}", per(*n)))
        .collect();
    let of = if events > 1 {
        format!("; {total} in {events} events")
    } else {
        String::new()
    };
    format!("{} per event ({}{of})", per(total), parts.join(" + "))
}

/// A real `ha_server` with `CSR_HA_CLOUD=aws` whose EC2 endpoint is `endpoint`; stopped on drop.
struct Server {
    _tmp: tempfile::TempDir,
    dir: HaDir,
    bins: PathBuf,
    child: Option<Child>,
}

impl Server {
    fn start(bins: &Path, endpoint: &str) -> Server {
        let tmp = tempfile::Builder::new()
            .prefix("csr-ha-aws-bench")
            .tempdir()
            .expect("temp dir");
        let dir = HaDir::new(tmp.path().join("HA"));
        let mut server = Server {
            _tmp: tmp,
            dir,
            bins: bins.to_path_buf(),
            child: None,
        };
        let mut cmd = server.command("ha_server");
        cmd.env("AWS_ENDPOINT_URL", endpoint)
            .env("AWS_ACCESS_KEY_ID", "AKIAMOTOTESTKEY00001")
            .env("AWS_SECRET_ACCESS_KEY", "moto-does-not-check-this")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:9")
            .env("NO_PROXY", "127.0.0.1")
            .env("no_proxy", "127.0.0.1");
        for var in [
            "AWS_ENDPOINT_URL_EC2",
            "AWS_SESSION_TOKEN",
            "AWS_PROFILE",
            "HTTPS_PROXY",
            "https_proxy",
            "HTTP_PROXY",
            "http_proxy",
            "ALL_PROXY",
            "all_proxy",
        ] {
            cmd.env_remove(var);
        }
        if let Err(e) = support::start_server(cmd, &server.dir, &mut server.child) {
            panic!("{e}");
        }
        server
    }

    /// A server or client process for this HA directory (clients get no AWS settings).
    fn command(&self, name: &str) -> Process {
        let mut cmd = Process::new(self.bins.join(name));
        cmd.env("CSR_HA_DIR", self.dir.root())
            .env("CSR_HA_CLOUD", "aws")
            .env_remove("CSR_HA_TIMEOUT")
            .env_remove("RUST_LOG");
        cmd
    }

    /// Runs a client process to its end; panics unless it exits 0.
    fn ok(&self, name: &str, args: &[&str]) -> String {
        let out = self.command(name).args(args).output().expect("run client");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{name} {args:?}: {text}");
        text
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = client::request(&self.dir, Command::Stop, client::REPLY_WAIT);
            support::reap(&mut child, Duration::from_secs(5));
        }
    }
}

/// One row of the printed table.
fn row(what: &str, runs: usize, time: &str, calls: &str) {
    println!("| {what} | {runs} | {time} | {calls} |");
}

/// Part 1: the provider through the library.
fn library(moto: &aws_moto::Moto, ec2: &Ec2Client, rounds: usize) {
    let vpc = aws_moto::Vpc::create(ec2);
    let config = AwsConfig {
        endpoint: Some(moto.endpoint.clone()),
        credentials: CredentialSources {
            static_keys: Some(aws_moto::any_keys()),
            ..Default::default()
        },
        ..Default::default()
    };
    let dir = tempfile::tempdir().expect("temp dir");

    let mut times = Vec::new();
    let mut calls = 0;
    for round in 0..rounds {
        let eni = if round % 2 == 0 {
            &vpc.eni_a
        } else {
            &vpc.eni_b
        };
        let started = Instant::now();
        let (outcomes, n) = handle(
            EventKind::PeerFail,
            dir.path(),
            &config,
            vec![node(1, &vpc.rtb, eni, aws_moto::V4_ROUTE)],
        );
        let shown = aws_moto::eni_of(ec2, &vpc.rtb, aws_moto::V4_ROUTE);
        let took = started.elapsed();
        assert!(
            outcomes[0].outcome == Status::Ok && shown.as_deref() == Some(eni.as_str()),
            "{outcomes:?}"
        );
        times.push(took);
        calls += n;
    }
    let (median, p90) = stats(&times);
    row(
        "library: peerFail, 1 node, `-r`, handler work + a read showing the new ENI",
        rounds,
        &format!("median {median:.1} ms, p90 {p90:.1} ms"),
        &format!(
            "{} per event (counted by the client: DescribeRouteTables + ReplaceRoute)",
            num(f64::from(calls) / rounds as f64)
        ),
    );

    create_routes(ec2, &vpc.rtb, &vpc.eni_b);
    let nodes: Vec<Node> = (0..REVERT_NODES)
        .map(|i| node(i + 10, &vpc.rtb, &vpc.eni_a, &revert_route(i)))
        .collect();
    let started = Instant::now();
    let (outcomes, n) = handle(EventKind::Revert, dir.path(), &config, nodes.clone());
    let took = started.elapsed();
    assert!(
        outcomes.iter().all(|o| o.outcome == Status::Ok),
        "{outcomes:?}"
    );
    assert_eq!(moved(ec2, &vpc.rtb, &vpc.eni_a), usize::from(REVERT_NODES));
    row(
        "library: revert, 200 primary nodes in one table, all moved",
        1,
        &format!(
            "{:.1} ms ({:.2} ms per route)",
            ms(took),
            ms(took) / f64::from(REVERT_NODES)
        ),
        &format!("{n} (counted by the client: 1 DescribeRouteTables + 200 ReplaceRoute)"),
    );
    let started = Instant::now();
    let (_, n) = handle(EventKind::Revert, dir.path(), &config, nodes);
    row(
        "library: revert again, 200 nodes already in place",
        1,
        &format!("{:.1} ms", ms(started.elapsed())),
        &format!("{n} (counted by the client: 1 DescribeRouteTables)"),
    );
}

fn revert_route(i: u16) -> String {
    format!("172.16.{i}.0/24")
}

fn create_routes(ec2: &Ec2Client, rtb: &str, eni: &str) {
    for i in 0..REVERT_NODES {
        ec2.call(
            "CreateRoute",
            &support::route_params(rtb, &revert_route(i), eni),
            aws_moto::deadline(),
        )
        .expect("CreateRoute");
    }
}

/// How many of the 200 revert routes point at `eni`, according to moto.
fn moved(ec2: &Ec2Client, rtb: &str, eni: &str) -> usize {
    aws_moto::routes(ec2, rtb)
        .iter()
        .filter(|r| r.destination.starts_with("172.16.") && r.eni.as_deref() == Some(eni))
        .count()
}

/// Part 2a: `node_event -i N -e peerFail` processes through a real server.
fn server_failover(bins: &Path, ec2: &Ec2Client, proxy: &CountingProxy, rounds: usize) {
    let vpc = aws_moto::Vpc::create(ec2);
    let server = Server::start(bins, &proxy.endpoint);
    // Node 1 is this router (eni_a), node 2 the peer (eni_b); the route starts via eni_b.
    for (index, eni, mode) in [("1", &vpc.eni_a, "primary"), ("2", &vpc.eni_b, "secondary")] {
        let args = support::aws_node_args(index, &vpc.rtb, eni, aws_moto::V4_ROUTE, mode);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = server.ok("create_node", &args);
        assert!(out.starts_with("200: "), "{out}");
    }
    for poll in [true, false] {
        let (mut seen, mut exited, mut polls) = (Vec::new(), Vec::new(), Vec::new());
        let warm_up = 2;
        proxy.take();
        let mut counted = BTreeMap::new();
        for run in 0..rounds + warm_up {
            let (index, want) = if run % 2 == 0 {
                ("1", &vpc.eni_a)
            } else {
                ("2", &vpc.eni_b)
            };
            if run == warm_up {
                proxy.take();
            }
            let mut cmd = server.command("node_event");
            cmd.args(["-i", index, "-e", "peerFail"]);
            // One DescribeRouteTables in flight at a time, straight to moto.
            let mut read_moto = || {
                let sent = Instant::now();
                let shown = aws_moto::eni_of(ec2, &vpc.rtb, aws_moto::V4_ROUTE);
                polls.push(sent.elapsed());
                shown.as_deref() == Some(want)
            };
            let poller = poll.then_some(&mut read_moto as &mut dyn FnMut() -> bool);
            let watched = support::watch(cmd, poller, Duration::from_secs(60))
                .unwrap_or_else(|e| panic!("node_event -i {index}: {e}"));
            let (status, out) = (watched.status, &watched.stdout);
            assert!(
                status.success() && out.starts_with("200: "),
                "{status}: {out}"
            );
            if !poll {
                let shown = aws_moto::eni_of(ec2, &vpc.rtb, aws_moto::V4_ROUTE);
                assert_eq!(
                    shown.as_deref(),
                    Some(want.as_str()),
                    "not confirmed by a read"
                );
            }
            if run >= warm_up {
                seen.extend(watched.seen);
                exited.push(watched.exited);
            }
        }
        for (action, n) in proxy.take() {
            *counted.entry(action).or_insert(0) += n;
        }
        let calls = fmt_counts(&counted, rounds);
        if poll {
            let (median, p90) = stats(&seen);
            let (poll_median, _) = stats(&polls);
            row(
                &format!("server: `node_event -i N -e peerFail` (N = 1, 2 alternating) spawn → poller (1 DescribeRouteTables in flight, {poll_median:.1} ms median each) sees the new ENI"),
                rounds,
                &format!("median {median:.1} ms, p90 {p90:.1} ms"),
                &calls,
            );
            let (median, p90) = stats(&exited);
            row(
                "server: same runs, spawn → `node_event` exit",
                rounds,
                &format!("median {median:.1} ms, p90 {p90:.1} ms"),
                "(same runs)",
            );
        } else {
            let (median, p90) = stats(&exited);
            row(
                "server: `node_event -i N -e peerFail` (N = 1, 2 alternating) spawn → exit, no poller (confirmed by a read after exit)",
                rounds,
                &format!("median {median:.1} ms, p90 {p90:.1} ms"),
                &calls,
            );
        }
    }
}

/// Part 2b: `node_event -i all -e revert` of 200 primary nodes in one table, fresh server.
fn server_revert(bins: &Path, ec2: &Ec2Client, proxy: &CountingProxy) {
    let vpc = aws_moto::Vpc::create(ec2);
    create_routes(ec2, &vpc.rtb, &vpc.eni_b);
    let server = Server::start(bins, &proxy.endpoint);
    let validated = |p: Param, v: &str| {
        let value = p.validate(v, Provider::Aws).expect("valid");
        (p, value.as_str().to_string())
    };
    std::thread::scope(|scope| {
        for t in 0..4u16 {
            let (server, vpc) = (&server, &vpc);
            scope.spawn(move || {
                for i in (t..REVERT_NODES).step_by(4) {
                    let command = Command::CreateNode(csr_ha::protocol::NodeParams {
                        index: NodeIndex::new(i + 1).expect("index"),
                        provider: Provider::Aws,
                        params: vec![
                            validated(Param::RouteTableId, &vpc.rtb),
                            validated(Param::Region, "us-east-1"),
                            validated(Param::EniId, &vpc.eni_a),
                            validated(Param::Route, &revert_route(i)),
                            validated(Param::Mode, "primary"),
                        ],
                    });
                    let wait = client::wait_for(&command);
                    let reply = client::request(&server.dir, command, wait).expect("create");
                    assert!(
                        reply.status == csr_ha::protocol::Status::Ok,
                        "{}",
                        reply.render()
                    );
                }
            });
        }
    });
    let mut times = Vec::new();
    let mut counted = BTreeMap::new();
    let mut again = (Duration::ZERO, BTreeMap::new());
    for run in 0..=REVERT_RUNS {
        let in_place = run == REVERT_RUNS;
        if !in_place && run > 0 {
            for i in 0..REVERT_NODES {
                ec2.call(
                    "ReplaceRoute",
                    &support::route_params(&vpc.rtb, &revert_route(i), &vpc.eni_b),
                    aws_moto::deadline(),
                )
                .expect("reset route");
            }
        }
        assert_eq!(
            moved(ec2, &vpc.rtb, &vpc.eni_a),
            if in_place { 200 } else { 0 }
        );
        proxy.take();
        let started = Instant::now();
        let out = server.ok("node_event", &["-i", "all", "-e", "revert"]);
        let took = started.elapsed();
        let counts = proxy.take();
        assert_eq!(
            out.lines().filter(|l| l.starts_with("200: ")).count(),
            200,
            "{out}"
        );
        assert_eq!(moved(ec2, &vpc.rtb, &vpc.eni_a), 200);
        if in_place {
            again = (took, counts);
        } else {
            times.push(took);
            for (action, n) in counts {
                *counted.entry(action).or_insert(0) += n;
            }
        }
    }
    let all: Vec<String> = times.iter().map(|t| format!("{:.0} ms", ms(*t))).collect();
    let (median, _) = stats(&times);
    row(
        "server: `node_event -i all -e revert`, 200 primary nodes in one table, all moved",
        REVERT_RUNS,
        &format!(
            "median {median:.0} ms (runs: {}; {:.2} ms per route)",
            all.join(", "),
            median / 200.0
        ),
        &fmt_counts(&counted, REVERT_RUNS),
    );
    row(
        "server: `node_event -i all -e revert` again, 200 routes already in place",
        1,
        &format!("{:.1} ms", ms(again.0)),
        &fmt_counts(&again.1, 1),
    );
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(50);
    let bins = support::bins(&["ha_server", "create_node", "node_event"])
        .unwrap_or_else(|e| panic!("{e}"));
    let moto = aws_moto::Moto::start(&[]);
    let ec2 = moto.client(aws_moto::any_keys());
    let proxy = CountingProxy::start(&moto.endpoint);
    // The venv's python beside moto_server knows moto's version.
    let python = aws_moto::moto_server().with_file_name("python");
    let moto_version = Process::new(python)
        .args(["-c", "import moto; print(moto.__version__)"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    println!(
        "moto_server {moto_version} on {}; counting proxy on {} (the server's \
         AWS_ENDPOINT_URL; server rows' calls are counted there)",
        moto.endpoint, proxy.endpoint
    );
    println!("\n| what | runs | time | API calls |");
    println!("|---|---|---|---|");
    library(&moto, &ec2, rounds);
    server_failover(&bins, &ec2, &proxy, rounds);
    server_revert(&bins, &ec2, &proxy);
}
