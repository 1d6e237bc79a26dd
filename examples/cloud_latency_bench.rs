//! Failover as a router in a real region would see it: every request to a cloud API, metadata
//! service or login server is held for a region's round trip (default 25 ms) by a loopback
//! proxy that also counts it.
//!
//! ```text
//! scripts/setup_venv.sh                   # moto for EC2 (or CSR_HA_MOTO_SERVER=<moto_server>)
//! cargo build --release --bins --examples
//! cargo run --release --example cloud_latency_bench -- [--delay-ms 25] [--runs 5] [--events 4]
//!     [--bulk-runs 3] [--clouds aws,azure,gcp] [--azure-lro]
//! ```
//!
//! Everything runs on 127.0.0.1: moto (EC2), the AWS IMDS fake, the Azure fake (ARM, login and
//! IMDS on one port) and the GCP fake (Compute and metadata on one port) from `tests/fakes` (the crate `csr_ha_fakes`),
//! each behind its own front of the latency proxy (`tests/fakes/src/latency_proxy.rs`). The
//! failovers go through the real binaries only — `ha_server`, `create_node`, `node_event`,
//! `ha_api`, and the `ha_event_handler` the server forks — with every endpoint variable set on
//! the server to a proxy front (and the other clouds' to a closed port), no AWS keys (the
//! instance role of the IMDS fake is used), Azure's managed identity (IMDS), and the GCE
//! metadata server's token. So the benchmark does not depend on how `src/cloud` is built inside.
//!
//! Each *run* starts a fresh server in a fresh HA directory holding a copy of the nodes (made once
//! by a set-up server with no delay), sends `--events` events one after another, and stops the
//! server with `ha_api -c stop`. The first event of a run is *cold* (no credential cached since
//! the server started); the others are *warm*. Time is from spawning `node_event` to its exit;
//! the reply comes only after the handler's writes were answered, and each event's result is then
//! read back from moto or the fake (not counted, not delayed) and checked.
//!
//! Rows: peerFail of one node with `-r` on each cloud (two nodes, alternated, so every event
//! moves the route); Azure peerFail of a node without `-r` on a table of 100 routes pointing at
//! the peer (all-routes mode); AWS `node_event -i all -e revert` of 200 primary nodes with one
//! `-r` route each in one table (the routes are pointed back at the peer through moto before each
//! event). With `--azure-lro` one more Azure 100-route event runs with every write long-running
//! (the fake finishes each on its second poll; the handler waits 1 s between polls, so this took
//! minutes while each route had its own PUT).
//!
//! Each run checks that it starts with no credential cache (`HaDir::credential_cache()`, which
//! differs per HA directory) and prints how many files the cache held after the run's events and
//! whether `ha_api -c stop` removed it (a cache left behind is counted, then removed).

#[path = "support/mod.rs"]
mod support;

use csr_ha_fakes::{aws_fakes, aws_moto, azure_fake, gcp_fake, latency_proxy};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use csr_ha::cloud::aws::Ec2Client;
use csr_ha::paths::HaDir;
use latency_proxy::{Kind, Latency, Tally};
use support::{ms, num, words};

/// An address nothing listens on: the endpoints of the clouds a server is not benchmarking.
const CLOSED: &str = "http://127.0.0.1:9";

const AZURE_OURS: &str = "10.0.1.20";
const AZURE_PEER: &str = "10.0.1.10";
const AZURE_ROUTES: usize = 100;
const GCP_PROJECT: &str = "proj-1";
const GCP_VPC: &str = "vpc-1";
const REVERT_ROUTES: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cloud {
    Aws,
    Azure,
    Gcp,
}

impl Cloud {
    fn word(self) -> &'static str {
        match self {
            Cloud::Aws => "aws",
            Cloud::Azure => "azure",
            Cloud::Gcp => "gcp",
        }
    }
}

struct Options {
    delay: Duration,
    runs: usize,
    events: usize,
    bulk_runs: usize,
    clouds: Vec<Cloud>,
    azure_lro: bool,
}

const USAGE: &str = "usage: cloud_latency_bench [--delay-ms MS (25)] [--runs N (5)] \
[--events N per run (4)] [--bulk-runs N (3)] [--clouds aws,azure,gcp] [--azure-lro]";

fn options() -> Result<Options, String> {
    let mut options = Options {
        delay: Duration::from_millis(25),
        runs: 5,
        events: 4,
        bulk_runs: 3,
        clouds: vec![Cloud::Aws, Cloud::Azure, Cloud::Gcp],
        azure_lro: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = |what: &str| {
            args.next()
                .ok_or_else(|| format!("{flag} needs {what}\n{USAGE}"))
        };
        let count = |text: String, flag: &str| {
            text.parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{flag} {text:?}: expected a whole number ≥ 1"))
        };
        match flag.as_str() {
            "--delay-ms" => {
                let text = value("milliseconds")?;
                let ms: u64 = text
                    .parse()
                    .map_err(|_| format!("--delay-ms {text:?}: expected whole milliseconds"))?;
                options.delay = Duration::from_millis(ms);
            }
            "--runs" => options.runs = count(value("a count")?, "--runs")?,
            "--events" => options.events = count(value("a count")?, "--events")?,
            "--bulk-runs" => options.bulk_runs = count(value("a count")?, "--bulk-runs")?,
            "--clouds" => {
                options.clouds = value("a list")?
                    .split(',')
                    .map(|word| match word.trim() {
                        "aws" => Ok(Cloud::Aws),
                        "azure" => Ok(Cloud::Azure),
                        "gcp" => Ok(Cloud::Gcp),
                        other => Err(format!("--clouds: {other:?} is not aws, azure or gcp")),
                    })
                    .collect::<Result<_, _>>()?;
            }
            "--azure-lro" => options.azure_lro = true,
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if options.events < 2 {
        return Err("--events must be at least 2 (one cold event, then warm ones)".into());
    }
    Ok(options)
}

/// Where a server's handlers send each cloud's requests, by the variable that names it: the
/// proxy fronts of the cloud under test; [`CLOSED`] for the others.
#[derive(Debug, Clone)]
struct Endpoints {
    cloud: Cloud,
    vars: BTreeMap<&'static str, String>,
}

/// Every variable that points a cloud's API, login or metadata requests somewhere.
const ENDPOINT_VARS: [&str; 8] = [
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_EC2",
    "AWS_EC2_METADATA_SERVICE_ENDPOINT",
    "CSR_HA_AZURE_ARM_ENDPOINT",
    "CSR_HA_AZURE_LOGIN_ENDPOINT",
    "CSR_HA_AZURE_IMDS_ENDPOINT",
    "CSR_HA_GCP_COMPUTE_ENDPOINT",
    "GCE_METADATA_HOST",
];

impl Endpoints {
    fn closed(cloud: Cloud) -> Endpoints {
        let mut endpoints = Endpoints {
            cloud,
            vars: BTreeMap::new(),
        };
        endpoints.set(&ENDPOINT_VARS, CLOSED);
        endpoints
    }

    /// Points `vars` at `url` (`GCE_METADATA_HOST` gets only its `host:port`).
    fn set(&mut self, vars: &[&'static str], url: &str) {
        for var in vars {
            assert!(ENDPOINT_VARS.contains(var), "{var} is not an endpoint");
            let value = match *var {
                "GCE_METADATA_HOST" => url.trim_start_matches("http://"),
                _ => url,
            };
            self.vars.insert(var, value.to_string());
        }
    }

    /// The environment of `ha_server` (and so of its handlers), from nothing: no AWS keys, no
    /// shared credentials file, no HTTP proxy variables survive `env_clear`.
    fn apply(&self, cmd: &mut Command, home: &Path) {
        cmd.env_clear();
        if let Some(path) = std::env::var_os("PATH") {
            cmd.env("PATH", path);
        }
        // The variables that choose where the credential cache lives, so that the bench's
        // `HaDir::credential_cache()` names the server's (see `measure`); and the AWS write
        // concurrency, to see what the revert row owes to it.
        for var in [
            "XDG_RUNTIME_DIR",
            "CSR_HA_REPLIES_TMPFS",
            "CSR_HA_AWS_WRITES_IN_FLIGHT",
        ] {
            if let Some(value) = std::env::var_os(var) {
                cmd.env(var, value);
            }
        }
        cmd.env("HOME", home).envs(&self.vars).envs([
            ("CSR_HA_CLOUD", self.cloud.word()),
            ("CSR_HA_HANDLER_TIMEOUT", "900"),
            ("NO_PROXY", "127.0.0.1,localhost"),
            ("no_proxy", "127.0.0.1,localhost"),
            ("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE", "IPv4"),
            ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials"),
            ("AWS_CONFIG_FILE", "/nonexistent/config"),
            ("GOOGLE_APPLICATION_CREDENTIALS", ""),
        ]);
    }
}

/// The nodes of one scenario, created once by a set-up server; each run's server gets a copy.
struct Site {
    endpoints: Endpoints,
    bins: PathBuf,
    template: tempfile::TempDir,
}

impl Site {
    /// Starts a server with no delay, creates a node per `create_node` argument list (4 at a
    /// time), and stops it, leaving the node file behind.
    fn new(endpoints: Endpoints, bins: &Path, latency: &Latency, nodes: &[Vec<String>]) -> Site {
        let template = tempfile::Builder::new()
            .prefix("csr-ha-latency-site")
            .tempdir()
            .expect("temp dir");
        let site = Site {
            endpoints,
            bins: bins.to_path_buf(),
            template,
        };
        let delay = latency.delay();
        latency.set_delay(Duration::ZERO);
        let server = Server::start(&site, site.template.path());
        let per_thread = nodes.len().div_ceil(4);
        std::thread::scope(|scope| {
            for chunk in nodes.chunks(per_thread.max(1)) {
                let server = &server;
                scope.spawn(move || {
                    for args in chunk {
                        let args: Vec<&str> = args.iter().map(String::as_str).collect();
                        let out = server.client("create_node", &args);
                        assert!(
                            out.starts_with("200: ") || out.starts_with("199: "),
                            "create_node {args:?}: {out}"
                        );
                    }
                });
            }
        });
        drop(server);
        latency.set_delay(delay);
        latency.take();
        site
    }

    /// A server in a fresh HA directory holding a copy of the site's nodes: no credential cache,
    /// wherever the cloud layer keeps one per HA directory.
    fn server(&self) -> Server {
        let run = tempfile::Builder::new()
            .prefix("csr-ha-latency-run")
            .tempdir()
            .expect("temp dir");
        let (from, to) = (
            HaDir::new(self.template.path().join("HA")),
            HaDir::new(run.path().join("HA")),
        );
        std::fs::create_dir_all(to.root()).expect("HA dir");
        std::fs::copy(from.node_file(), to.node_file()).unwrap_or_else(|e| {
            panic!("copy {}: {e}", from.node_file().display());
        });
        let mut server = Server::start(self, run.path());
        server._run = Some(run);
        server
    }
}

/// A running `ha_server`; stopped with `ha_api -c stop` on drop.
struct Server {
    dir: HaDir,
    cloud: Cloud,
    home: PathBuf,
    bins: PathBuf,
    child: Option<Child>,
    _run: Option<tempfile::TempDir>,
}

impl Server {
    fn start(site: &Site, base: &Path) -> Server {
        let dir = HaDir::new(base.join("HA"));
        let mut server = Server {
            dir,
            cloud: site.endpoints.cloud,
            home: base.to_path_buf(),
            bins: site.bins.clone(),
            child: None,
            _run: None,
        };
        let mut cmd = Command::new(site.bins.join("ha_server"));
        site.endpoints.apply(&mut cmd, base);
        cmd.env("CSR_HA_DIR", server.dir.root());
        if let Err(e) = support::start_server(cmd, &server.dir, &mut server.child) {
            panic!("{e}");
        }
        server
    }

    /// A client process for this server: it needs the cloud's word (its flags depend on it)
    /// but no endpoint.
    fn command(&self, name: &str) -> Command {
        let mut cmd = Command::new(self.bins.join(name));
        cmd.env_clear()
            .env("HOME", &self.home)
            .env("CSR_HA_DIR", self.dir.root())
            .env("CSR_HA_CLOUD", self.cloud.word())
            .env("CSR_HA_EVENT_TIMEOUT", "900");
        if let Some(path) = std::env::var_os("PATH") {
            cmd.env("PATH", path);
        }
        cmd
    }

    /// Runs a client to its end and returns its output; panics unless it exits 0.
    fn client(&self, name: &str, args: &[&str]) -> String {
        let out = self
            .command(name)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run client");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{name} {args:?}: {text}");
        text
    }

    /// Times `node_event ARGS` from spawn to exit; every node must answer `200: `.
    fn event(&self, args: &[String]) -> Duration {
        let started = Instant::now();
        let out = self
            .command("node_event")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run node_event");
        let took = started.elapsed();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.lines().all(|l| l.starts_with("200: ")),
            "node_event {args:?}: {}\n{text}",
            out.status
        );
        took
    }
}

impl Drop for Server {
    /// `ha_api -c stop`, the way an operator stops it (and whatever it clears, it clears).
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = self
            .command("ha_api")
            .args(["-c", "stop"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status();
        if !support::reap(&mut child, Duration::from_secs(10)) {
            eprintln!("ha_server did not stop within 10 s: killed it");
        }
    }
}

/// One timed event and what the proxy carried for it.
struct Sample {
    /// The first event after the server started.
    cold: bool,
    took: Duration,
    tally: Tally,
}

/// What a scenario does around each event `n` (counted over all runs from 0).
struct Scenario<'a> {
    /// Puts the cloud back where event `n` has something to move (straight to the fake).
    prepare: Box<dyn FnMut(usize) + 'a>,
    /// `node_event` arguments for event `n`.
    args: Box<dyn Fn(usize) -> Vec<String> + 'a>,
    /// Panics unless event `n`'s writes are in the cloud (read straight from the fake).
    confirm: Box<dyn Fn(usize) + 'a>,
}

impl<'a> Scenario<'a> {
    /// Events with nothing to put back before them.
    fn new(args: impl Fn(usize) -> Vec<String> + 'a, confirm: impl Fn(usize) + 'a) -> Self {
        Scenario {
            prepare: Box::new(|_| {}),
            args: Box::new(args),
            confirm: Box::new(confirm),
        }
    }

    fn preparing(mut self, prepare: impl FnMut(usize) + 'a) -> Self {
        self.prepare = Box::new(prepare);
        self
    }
}

/// `peerFail` of node 1, then node 2, and so on: every event moves the route.
fn alternate(n: usize) -> Vec<String> {
    let index = if n.is_multiple_of(2) { "1" } else { "2" };
    words(&format!("-i {index} -e peerFail"))
}

/// Files in a credential cache directory; 0 when there is none.
fn cached_files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| entries.count())
}

/// `runs` fresh servers × `events` events each. Checks that every run starts with no credential
/// cache (so its first event is really cold) and prints what the cache held after the events and
/// whether `ha_api -c stop` removed it.
fn measure(
    site: &Site,
    latency: &Latency,
    (runs, events): (usize, usize),
    mut scenario: Scenario,
) -> Vec<Sample> {
    let mut samples = Vec::new();
    let mut n = 0;
    let (mut held, mut left_behind) = (Vec::new(), 0);
    let mut cache = PathBuf::new();
    for _ in 0..runs {
        let server = site.server();
        cache = server.dir.credential_cache();
        assert!(
            !cache.exists(),
            "{} exists before the run's first event: the cold event would be warm",
            cache.display()
        );
        for event in 0..events {
            (scenario.prepare)(n);
            latency.take();
            let took = server.event(&(scenario.args)(n));
            let tally = latency.take();
            (scenario.confirm)(n);
            samples.push(Sample {
                cold: event == 0,
                took,
                tally,
            });
            n += 1;
        }
        held.push(cached_files(&cache).to_string());
        drop(server);
        if cache.exists() {
            // Counted as a finding; removed so that the bench leaves no credentials on tmpfs.
            left_behind += 1;
            let _ = std::fs::remove_dir_all(&cache);
        }
    }
    println!(
        "credential cache ({}): files after each run's events: {}; left after `ha_api -c stop`: \
         {left_behind} of {runs} runs",
        cache.display(),
        held.join(", ")
    );
    samples
}

/// Times and per-event request counts of some samples.
struct Summary {
    events: usize,
    median: Duration,
    p90: Duration,
    /// Mean requests per event, by kind (in [`Kind::ALL`] order).
    per_kind: [f64; 4],
    connections: f64,
    /// The request list of the first sample, `METHOD /path` (queries cut).
    first: Vec<String>,
}

impl Summary {
    fn of<'a>(samples: impl Iterator<Item = &'a Sample>) -> Summary {
        let samples: Vec<&Sample> = samples.collect();
        assert!(!samples.is_empty(), "no samples");
        let mut times: Vec<Duration> = samples.iter().map(|s| s.took).collect();
        times.sort();
        let rank = |p: f64| support::nearest_rank(&times, p).expect("samples");
        let mut all = Tally::default();
        for s in &samples {
            all.add(&s.tally);
        }
        let n = samples.len() as f64;
        Summary {
            events: samples.len(),
            median: rank(0.5),
            p90: rank(0.9),
            per_kind: Kind::ALL.map(|k| all.count(k) as f64 / n),
            connections: f64::from(all.connections()) / n,
            first: samples[0]
                .tally
                .requests
                .iter()
                .map(|r| format!("{} {}", r.method, short_path(&r.target)))
                .collect(),
        }
    }

    fn kind(&self, kind: Kind) -> f64 {
        self.per_kind[Kind::ALL.iter().position(|k| *k == kind).expect("kind")]
    }

    fn total(&self) -> f64 {
        self.per_kind.iter().sum()
    }

    fn time(&self) -> String {
        format!(
            "median {}, p90 {}",
            fmt_time(self.median),
            fmt_time(self.p90)
        )
    }

    /// `5 (2 API + 3 metadata); 5 connections`, per event.
    fn requests(&self) -> String {
        let parts: Vec<String> = Kind::ALL
            .iter()
            .zip(self.per_kind)
            .filter(|(_, n)| *n > 0.0)
            .map(|(k, n)| format!("{} {}", num(n), k.label()))
            .collect();
        format!(
            "{} ({}); {} new connections",
            num(self.total()),
            parts.join(" + "),
            num(self.connections)
        )
    }
}

/// A request's path without its query, long ones cut to `…/` and their last two segments.
fn short_path(target: &str) -> String {
    let path = target.split('?').next().unwrap_or("");
    let segments: Vec<&str> = path.split('/').collect();
    if segments.len() > 5 {
        format!("…/{}", segments[segments.len() - 2..].join("/"))
    } else {
        path.to_string()
    }
}

fn fmt_time(d: Duration) -> String {
    if d >= Duration::from_secs(1) {
        format!("{:.2} s", d.as_secs_f64())
    } else {
        format!("{:.1} ms", ms(d))
    }
}

/// Rows of the printed results table and the checks against the issue's targets.
#[derive(Default)]
struct Report {
    rows: Vec<String>,
    targets: Vec<String>,
    sequences: Vec<String>,
}

impl Report {
    fn row(&mut self, what: &str, s: &Summary) {
        self.rows.push(format!(
            "| {what} | {} | {} | {} |",
            s.events,
            s.time(),
            s.requests()
        ));
    }

    fn target(&mut self, what: &str, measured: String, met: bool) {
        let met = if met { "yes" } else { "**no**" };
        self.targets
            .push(format!("| {what} | {measured} | {met} |"));
    }

    fn sequence(&mut self, what: &str, s: &Summary) {
        self.sequences
            .push(format!("- {what}: {}", s.first.join(", ")));
    }

    /// A row for the cold events (`what, cold`) and one for the warm ones (`warm`).
    fn cold_and_warm(&mut self, what: &str, warm: &str, samples: &[Sample]) -> (Summary, Summary) {
        let cold_summary = Summary::of(samples.iter().filter(|s| s.cold));
        let warm_summary = Summary::of(samples.iter().filter(|s| !s.cold));
        self.row(&format!("{what}, cold"), &cold_summary);
        self.row(warm, &warm_summary);
        (cold_summary, warm_summary)
    }

    /// Rows for the cold and warm events of a one-node peerFail, and the warm-cache target.
    fn peer_fail(&mut self, cloud: &str, samples: &[Sample]) -> Summary {
        let (cold, warm) = self.cold_and_warm(
            &format!("{cloud}: peerFail, 1 node `-r`"),
            &format!("{cloud}: peerFail, 1 node `-r`, warm (2nd and later events)"),
            samples,
        );
        self.sequence(&format!("{cloud} peerFail, cold"), &cold);
        self.sequence(&format!("{cloud} peerFail, warm"), &warm);
        if cold.kind(Kind::Metadata) + cold.kind(Kind::Login) == 0.0 {
            eprintln!(
                "warning: {cloud}: the cold events made no metadata or login request: a \
                 credential cache survived the server's stop and a fresh HA directory"
            );
        }
        let auth = warm.kind(Kind::Metadata) + warm.kind(Kind::Login);
        self.target(
            &format!("{cloud}: 0 metadata or login requests on 2nd and later events"),
            format!("{} per event", num(auth)),
            auth == 0.0,
        );
        warm
    }
}

/// Unsigned EC2 Query calls straight to moto (it checks no signature), for the bench's own
/// set-up; they go around the proxy and are not counted.
struct MotoEc2 {
    endpoint: String,
    agent: ureq::Agent,
}

impl MotoEc2 {
    fn call(&self, action: &str, params: &[(&str, &str)]) -> String {
        let mut form = format!("Action={action}&Version=2016-11-15");
        for (k, v) in params {
            // Ids, CIDRs and `true` only: nothing that needs percent-encoding in a form.
            assert!(
                v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._/:".contains(&b)),
                "{v:?}"
            );
            form.push_str(&format!("&{k}={v}"));
        }
        let mut response = self
            .agent
            .post(&format!("{}/", self.endpoint))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header(
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=AKIAMOTOTESTKEY00001/20260101/us-east-1/ec2/aws4_request, \
                 SignedHeaders=host, Signature=0",
            )
            .send(form)
            .unwrap_or_else(|e| panic!("{action} to moto: {e}"));
        let body = response.body_mut().read_to_string().expect("moto answer");
        assert!(response.status() == 200, "{action}: {body}");
        body
    }
}

fn aws(options: &Options, bins: &Path, latency: &Latency, report: &mut Report) {
    let moto = aws_moto::Moto::start(&[]);
    let ec2 = moto.client(aws_moto::any_keys());
    let direct = MotoEc2 {
        endpoint: moto.endpoint.clone(),
        agent: ureq::Agent::new_with_defaults(),
    };
    let imds = aws_fakes::FakeImds::start("2999-01-01T00:00:00Z");
    let mut endpoints = Endpoints::closed(Cloud::Aws);
    let ec2_front = latency.front("moto (EC2)", &moto.endpoint, |_, _| Kind::Api);
    endpoints.set(
        &["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_EC2"],
        &ec2_front.url,
    );
    let imds_front = latency.front("AWS IMDS fake", &imds.endpoint, |_, _| Kind::Metadata);
    endpoints.set(&["AWS_EC2_METADATA_SERVICE_ENDPOINT"], &imds_front.url);

    // peerFail: node 1 (this router, eni_a) and node 2 (eni_b) name one route; alternating
    // `-i 1` / `-i 2` moves it every event.
    let vpc = aws_moto::Vpc::create(&ec2);
    let node =
        |index, eni, mode| support::aws_node_args(index, &vpc.rtb, eni, aws_moto::V4_ROUTE, mode);
    let site = Site::new(
        endpoints.clone(),
        bins,
        latency,
        &[
            node("1", &vpc.eni_a, "primary"),
            node("2", &vpc.eni_b, "secondary"),
        ],
    );
    let want = |n: usize| {
        if n.is_multiple_of(2) {
            &vpc.eni_a
        } else {
            &vpc.eni_b
        }
    };
    let confirm = |n| {
        let shown = aws_moto::eni_of(&ec2, &vpc.rtb, aws_moto::V4_ROUTE);
        assert_eq!(shown.as_deref(), Some(want(n).as_str()), "event {n}");
    };
    let each = (options.runs, options.events);
    let samples = measure(&site, latency, each, Scenario::new(alternate, confirm));
    let warm = report.peer_fail("AWS", &samples);
    report.target(
        "AWS: peerFail with a warm cache ≤ 2 requests",
        format!("{} per event", num(warm.total())),
        warm.total() <= 2.0,
    );
    report.target(
        "AWS: peerFail with a warm cache ≤ 80 ms",
        format!("median {}", fmt_time(warm.median)),
        warm.median <= Duration::from_millis(80),
    );
    aws_revert(options, bins, latency, report, &ec2, &direct, endpoints);
}

/// Revert: 200 primary nodes (eni_a) with one `-r` /24 each, in one table whose routes are
/// pointed at eni_b before every event.
fn aws_revert(
    options: &Options,
    bins: &Path,
    latency: &Latency,
    report: &mut Report,
    ec2: &Ec2Client,
    direct: &MotoEc2,
    endpoints: Endpoints,
) {
    let vpc = aws_moto::Vpc::create(ec2);
    let route = |i: usize| format!("172.16.{i}.0/24");
    for i in 0..REVERT_ROUTES {
        direct.call(
            "CreateRoute",
            &support::route_params(&vpc.rtb, &route(i), &vpc.eni_b),
        );
    }
    let nodes: Vec<Vec<String>> = (0..REVERT_ROUTES)
        .map(|i| {
            let index = (i + 1).to_string();
            support::aws_node_args(&index, &vpc.rtb, &vpc.eni_a, &route(i), "primary")
        })
        .collect();
    let site = Site::new(endpoints, bins, latency, &nodes);
    let moved_to = |eni: &str| {
        aws_moto::routes(ec2, &vpc.rtb)
            .iter()
            .filter(|r| r.destination.starts_with("172.16.") && r.eni.as_deref() == Some(eni))
            .count()
    };
    let point_at_peer = |_| {
        for i in 0..REVERT_ROUTES {
            let cidr = route(i);
            direct.call(
                "ReplaceRoute",
                &support::route_params(&vpc.rtb, &cidr, &vpc.eni_b),
            );
        }
        assert_eq!(moved_to(&vpc.eni_b), REVERT_ROUTES);
    };
    let revert = Scenario::new(
        |_| words("-i all -e revert"),
        |n| assert_eq!(moved_to(&vpc.eni_a), REVERT_ROUTES, "event {n}"),
    );
    let bulk = (options.bulk_runs, 2);
    let samples = measure(&site, latency, bulk, revert.preparing(point_at_peer));
    let (_, warm) = report.cold_and_warm(
        "AWS: `node_event -i all -e revert`, 200 primary nodes `-r` in 1 table",
        "AWS: same revert, warm (2nd event of a server)",
        &samples,
    );
    let trips = warm.median.as_secs_f64() / latency.delay().as_secs_f64().max(1e-9);
    report.target(
        "AWS: 200-route revert (warm) ≤ 60 round trips of wall time (≤ 1.6 s at 25 ms)",
        format!("median {} = {trips:.0} round trips", fmt_time(warm.median)),
        trips <= 60.0,
    );
}

/// A request's kind from what its cloud's path says: metadata first, then a login (a POST),
/// then an operation poll; anything else is an API call.
fn kind_of(method: &str, metadata: bool, login: bool, poll: bool) -> Kind {
    match (metadata, method == "POST" && login, poll) {
        (true, _, _) => Kind::Metadata,
        (_, true, _) => Kind::Login,
        (_, _, true) => Kind::Poll,
        _ => Kind::Api,
    }
}

fn azure_classify(method: &str, target: &str) -> Kind {
    let path = target.split('?').next().unwrap_or("").to_ascii_lowercase();
    kind_of(
        method,
        path == "/metadata/identity/oauth2/token",
        path.contains("/oauth2/"),
        path.contains("/operations/") || path.contains("/operationresults/"),
    )
}

/// The `create_node` arguments of an Azure node in the fake's subscription and group.
fn azure_node(index: &str, table: &str, hop: &str, route: Option<&str>) -> Vec<String> {
    let (sub, group) = (azure_fake::SUB, azure_fake::GROUP);
    let route = route.map(|r| format!("-r {r}")).unwrap_or_default();
    words(&format!(
        "-i {index} -p azure -s {sub} -g {group} -t {table} -n {hop} {route}"
    ))
}

/// Where event `n` of [`alternate`] leaves the routes: node 1's event moves them to ours.
fn azure_hop(n: usize) -> &'static str {
    if n.is_multiple_of(2) {
        AZURE_OURS
    } else {
        AZURE_PEER
    }
}

fn azure(options: &Options, bins: &Path, latency: &Latency, report: &mut Report) {
    use azure_fake::{Fake, FakeRoute, Writes};
    let fake = Fake::start();
    let front = latency.front("Azure fake (ARM, login, IMDS)", &fake.base, azure_classify);
    {
        let mut state = fake.state();
        // The handler asks for the public cloud's audience; accept any.
        state.resource = String::new();
        // Long-running operations are polled through the proxy too.
        state.arm_base = front.url.clone();
    }
    let mut endpoints = Endpoints::closed(Cloud::Azure);
    let azure = [
        "CSR_HA_AZURE_ARM_ENDPOINT",
        "CSR_HA_AZURE_LOGIN_ENDPOINT",
        "CSR_HA_AZURE_IMDS_ENDPOINT",
    ];
    endpoints.set(&azure, &front.url);
    let (node, hop) = (azure_node, azure_hop);

    fake.add_table(
        "rt-one",
        vec![
            FakeRoute::appliance("to-dc", "10.99.0.0/16", AZURE_PEER),
            FakeRoute::other("internet", "0.0.0.0/0", "Internet"),
        ],
    );
    let site = Site::new(
        endpoints.clone(),
        bins,
        latency,
        &[
            node("1", "rt-one", AZURE_OURS, Some("10.99.0.0/16")),
            node("2", "rt-one", AZURE_PEER, Some("10.99.0.0/16")),
        ],
    );
    let confirm = |n| {
        let route = fake.route("rt-one", "to-dc");
        assert_eq!(route.hop_ip.as_deref(), Some(hop(n)), "event {n}");
    };
    let each = (options.runs, options.events);
    let samples = measure(&site, latency, each, Scenario::new(alternate, confirm));
    report.peer_fail("Azure", &samples);

    // All-routes mode: nodes without `-r` on a table of 100 routes; every event moves all 100.
    let cidr = |i: usize| format!("10.{}.{}.0/24", 100 + i / 256, i % 256);
    let routes =
        (0..AZURE_ROUTES).map(|i| FakeRoute::appliance(&format!("r{i}"), &cidr(i), AZURE_PEER));
    fake.add_table("rt-100", routes.collect());
    let site = Site::new(
        endpoints,
        bins,
        latency,
        &[
            node("1", "rt-100", AZURE_OURS, None),
            node("2", "rt-100", AZURE_PEER, None),
        ],
    );
    let all_moved = |n: usize| {
        let routes = fake.routes("rt-100");
        assert_eq!(routes.len(), AZURE_ROUTES);
        assert!(
            routes.iter().all(|r| r.hop_ip.as_deref() == Some(hop(n))),
            "event {n}: not every route via {}",
            hop(n)
        );
    };
    let bulk = (options.bulk_runs, 2);
    let samples = measure(&site, latency, bulk, Scenario::new(alternate, all_moved));
    let (_, warm) = report.cold_and_warm(
        "Azure: peerFail, node without `-r`, 100 routes in the table, writes done at once",
        "Azure: same, warm (2nd event of a server)",
        &samples,
    );
    report.target(
        "Azure: 100-route all-routes peerFail ≤ 4 ARM requests besides polls",
        format!("{} per event (warm)", num(warm.kind(Kind::Api))),
        warm.kind(Kind::Api) <= 4.0,
    );

    if options.azure_lro {
        fake.state().writes = Writes::AzureAsync;
        // Event 0 of this scenario would put every route back on ours: start from the other
        // side so that it moves all 100.
        let start = usize::from(fake.route("rt-100", "r0").hop_ip.as_deref() == Some(AZURE_OURS));
        let shifted = Scenario::new(|n| alternate(n + start), |n| all_moved(n + start));
        let samples = measure(&site, latency, (1, 1), shifted);
        fake.state().writes = Writes::Immediate;
        let one = Summary::of(samples.iter());
        report.row(
            "Azure: same 100 routes, every write long-running (done on the 2nd poll), cold",
            &one,
        );
    }
}

fn gcp_classify(method: &str, target: &str) -> Kind {
    let path = target.split('?').next().unwrap_or("");
    kind_of(
        method,
        path.starts_with("/computeMetadata/"),
        path.ends_with("/token"),
        path.ends_with("/wait") || path.contains("/operations/"),
    )
}

fn gcp(options: &Options, bins: &Path, latency: &Latency, report: &mut Report) {
    let fake = gcp_fake::GcpFake::start();
    let front = latency.front("GCP fake (Compute, metadata)", &fake.url, gcp_classify);
    let mut endpoints = Endpoints::closed(Cloud::Gcp);
    endpoints.set(
        &["CSR_HA_GCP_COMPUTE_ENDPOINT", "GCE_METADATA_HOST"],
        &front.url,
    );
    let seed_peer = || {
        fake.put_route(
            GCP_PROJECT,
            GCP_VPC,
            "route-b",
            "10.99.0.0/16",
            "10.0.1.10",
            200,
        )
    };
    fake.put_route(
        GCP_PROJECT,
        GCP_VPC,
        "route-a",
        "10.99.0.0/16",
        "10.0.1.20",
        100,
    );
    seed_peer();
    // This router's node, secondary: its peerFail deletes the peer's route so that its own
    // (same prefix, via 10.0.1.20) carries the traffic.
    let site = Site::new(
        endpoints,
        bins,
        latency,
        &[words(&format!(
            "-i 3 -p gcp -g {GCP_PROJECT} -v {GCP_VPC} -a route-a -b route-b -n 10.0.1.20 \
             -o 100 -r 10.99.0.0/16 -m secondary"
        ))],
    );
    let peer_deleted = |n| {
        assert!(
            fake.route(GCP_PROJECT, "route-b").is_none()
                && fake.route(GCP_PROJECT, "route-a").is_some(),
            "event {n}: the peer route is still there"
        );
    };
    let scenario = Scenario::new(|_| words("-i 3 -e peerFail"), peer_deleted).preparing(|_| {
        if fake.route(GCP_PROJECT, "route-b").is_none() {
            seed_peer();
        }
    });
    let samples = measure(&site, latency, (options.runs, options.events), scenario);
    report.peer_fail("GCP", &samples);
}

fn main() {
    let options = match options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    let needed = [
        "ha_server",
        "ha_event_handler",
        "create_node",
        "node_event",
        "ha_api",
    ];
    let bins = match support::bins(&needed) {
        Ok(bins) => bins,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(1);
        }
    };
    let latency = Latency::new(options.delay);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "cloud_latency_bench: {} ms per request, {} runs × {} events (bulk: {} runs × 2 events); \
         load average at start: {}",
        options.delay.as_millis(),
        options.runs,
        options.events,
        options.bulk_runs,
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let mut report = Report::default();
    for cloud in &options.clouds {
        let started = Instant::now();
        match cloud {
            Cloud::Aws => aws(&options, &bins, &latency, &mut report),
            Cloud::Azure => azure(&options, &bins, &latency, &mut report),
            Cloud::Gcp => gcp(&options, &bins, &latency, &mut report),
        }
        eprintln!(
            "cloud_latency_bench: {} done in {:.1} s",
            cloud.word(),
            started.elapsed().as_secs_f64()
        );
    }
    println!("\n| What | Events | Spawn → `node_event` exit | Requests per event (proxy count) |");
    println!("|---|---|---|---|");
    for row in &report.rows {
        println!("{row}");
    }
    println!("\n| Target (issue 12) | Measured | Met |");
    println!("|---|---|---|");
    for target in &report.targets {
        println!("{target}");
    }
    println!("\nRequests of the first cold and first warm event:");
    for line in &report.sequences {
        println!("{line}");
    }
}
