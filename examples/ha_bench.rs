//! `ha_bench [--quick] [--replies-disk] [--crowd N]`: latency, throughput, memory and failover
//! benchmarks; or, with `--crowd N`, only N client processes started at once.
//!
//! Build and run in release: `cargo build --release --bins && cargo run --release --example ha_bench -- [--quick] [--replies-disk] [--crowd N]`.
//! It creates its own temporary `CSR_HA_DIR`, starts the `ha_server` of its target directory with the
//! `file` provider, drives it through the real client binaries and the in-process client
//! library, prints a Markdown table, and stops every server it started, also on error or
//! panic. It touches nothing but local files and FIFOs under the temporary directory and the
//! server's own `replies/` directory on tmpfs (removed when the server stops).
//!
//! ```text
//! phase 1 (small server: nodes 1, 2 on table "fo")
//!   show_node -i 1 process time, in-process round trip, throughput 1/4/16 clients,
//!   peerFail failover alternating nodes 1 and 2 on one route
//! phase 2 (fresh server: 1023 nodes)
//!   RSS with 1023 nodes, node_event -i all -e revert on 1 table, then on 64 tables
//! --crowd N (fresh server: node 1 on table "fo")
//!   N `show_node -i 1` processes spawned at once, each with CSR_HA_TIMEOUT=30: failures,
//!   exit codes, the batch's wall time, the slowest client
//! ```

#[path = "support/mod.rs"]
mod support;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{Child, Command as Process, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use csr_ha::cli::{self, Flag};
use csr_ha::client;
use csr_ha::node::{NodeIndex, Param, Provider};
use csr_ha::paths::HaDir;
use csr_ha::protocol::{Command, Response, Target};

/// Router A's and router B's next hops.
const A: &str = "10.0.1.10";
const B: &str = "10.0.1.20";
/// The route both failover nodes fight over.
const FAILOVER_ROUTE: &str = "10.200.0.0/16";
const MAX_NODES: u16 = 1023;
const TABLES: u16 = 64;

type Res<T> = Result<T, String>;

/// How much work each measurement does.
struct Sizes {
    process_runs: usize,
    latency_runs: usize,
    throughput_for: Duration,
    failover_runs: usize,
    revert_runs: usize,
}

impl Sizes {
    fn full() -> Sizes {
        Sizes {
            process_runs: 200,
            latency_runs: 2000,
            throughput_for: Duration::from_secs(2),
            failover_runs: 50,
            revert_runs: 3,
        }
    }
    fn quick() -> Sizes {
        Sizes {
            process_runs: 40,
            latency_runs: 300,
            throughput_for: Duration::from_millis(500),
            failover_runs: 10,
            revert_runs: 1,
        }
    }
}

/// One row of the results table.
struct Row {
    what: String,
    runs: String,
    result: String,
    target: String,
    met: String,
}

impl Row {
    fn new(what: impl Into<String>, runs: impl Into<String>, result: impl Into<String>) -> Row {
        Row {
            what: what.into(),
            runs: runs.into(),
            result: result.into(),
            target: String::new(),
            met: String::new(),
        }
    }
    fn target(mut self, target: &str, met: bool) -> Row {
        self.target = target.into();
        self.met = if met { "yes" } else { "**no**" }.into();
        self
    }
}

/// Sorted samples in microseconds.
struct Samples(Vec<f64>);

impl Samples {
    fn new(mut v: Vec<f64>) -> Samples {
        v.sort_by(|a, b| a.total_cmp(b));
        Samples(v)
    }
    /// Nearest-rank percentile, `p` in 0..=100.
    fn pct(&self, p: f64) -> f64 {
        support::nearest_rank(&self.0, p / 100.0).unwrap_or(f64::NAN)
    }
    fn median(&self) -> f64 {
        self.pct(50.0)
    }
    /// `median 1.2 ms, p90 1.5 ms`: the median, then each named percentile.
    fn describe(&self, percentiles: &[(&str, f64)]) -> String {
        let mut text = format!("median {}", fmt_us(self.median()));
        for (name, p) in percentiles {
            let _ = write!(text, ", {name} {}", fmt_us(self.pct(*p)));
        }
        text
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn fmt_us(v: f64) -> String {
    if v >= 1_000_000.0 {
        format!("{:.2} s", v / 1e6)
    } else if v >= 10_000.0 {
        format!("{:.1} ms", v / 1000.0)
    } else if v >= 1000.0 {
        format!("{:.2} ms", v / 1000.0)
    } else {
        format!("{v:.0} µs")
    }
}

/// Where the binaries are, and where reply FIFOs go.
struct Setup {
    bins: PathBuf,
    /// `--replies-disk`: the server gets `CSR_HA_REPLIES_TMPFS=0`, so `replies/` is a plain
    /// directory inside the HA dir (the layout before replies moved to tmpfs by default).
    replies_disk: bool,
}

/// A temporary HA directory with one `ha_server` child; dropping it stops the server.
struct Ha {
    _tmp: tempfile::TempDir,
    dir: HaDir,
    bins: PathBuf,
    server: Option<Child>,
}

impl Ha {
    fn start(setup: &Setup, server_env: &[(&str, &str)]) -> Res<Ha> {
        let bins = &setup.bins;
        let tmp = tempfile::Builder::new()
            .prefix("csr-ha-bench")
            .tempdir()
            .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
        let root = tmp.path().join("HA");
        let mut ha = Ha {
            dir: HaDir::new(&root),
            _tmp: tmp,
            bins: bins.to_path_buf(),
            server: None,
        };
        std::fs::create_dir_all(ha.dir.route_tables())
            .map_err(|e| format!("cannot create {}: {e}", ha.dir.route_tables().display()))?;
        let mut cmd = ha.command("ha_server");
        if setup.replies_disk {
            cmd.env("CSR_HA_REPLIES_TMPFS", "0");
        }
        for (k, v) in server_env {
            cmd.env(k, v);
        }
        support::start_server(cmd, &ha.dir, &mut ha.server)?;
        Ok(ha)
    }

    /// A client or server process with this directory and the `file` provider.
    fn command(&self, name: &str) -> Process {
        let mut cmd = Process::new(self.bins.join(name));
        cmd.env("CSR_HA_DIR", self.dir.root())
            .env("CSR_HA_CLOUD", "file")
            .env_remove("CSR_HA_TIMEOUT")
            .env_remove("RUST_LOG")
            // Long reverts are measured, not cut off at the 60 s default wait.
            .env("CSR_HA_EVENT_TIMEOUT", "600");
        cmd
    }

    /// Where the server put `replies/`: the symlink's target, or the plain directory.
    fn replies_at(&self) -> String {
        let link = self.dir.replies();
        match std::fs::read_link(&link) {
            Ok(target) => format!("symlink to {}", target.display()),
            Err(_) => format!("plain directory {}", link.display()),
        }
    }

    fn pid(&self) -> u32 {
        self.server.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    fn request(&self, command: Command) -> Res<Response> {
        let wait = client::wait_for(&command);
        client::request(&self.dir, command, wait).map_err(|e| e.to_string())
    }

    fn expect_ok(&self, command: Command) -> Res<Response> {
        let what = format!("{command:?}");
        let r = self.request(command)?;
        if r.succeeded() {
            Ok(r)
        } else {
            Err(format!("{what} failed: {}", r.render().trim()))
        }
    }

    /// Runs a client binary once (stdout discarded) and returns its wall time.
    fn run_timed(&self, name: &str, args: &[&str]) -> Res<Duration> {
        let started = Instant::now();
        let status = self
            .command(name)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| format!("cannot run {name}: {e}"))?;
        let took = started.elapsed();
        if !status.success() {
            let out = self.command(name).args(args).output().ok();
            let text = out
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            return Err(format!("{name} {args:?} exited {status}: {}", text.trim()));
        }
        Ok(took)
    }

    fn table_path(&self, name: &str) -> PathBuf {
        self.dir.route_tables().join(format!("{name}.json"))
    }

    fn write_table(&self, name: &str, routes: &[(String, &str)]) -> Res<()> {
        let routes: Vec<serde_json::Value> = routes
            .iter()
            .map(|(d, n)| serde_json::json!({"destination": d, "next_hop": n}))
            .collect();
        let text = serde_json::json!({ "routes": routes }).to_string();
        let path = self.table_path(name);
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
    }

    /// Every (destination, next hop) of a table; `None` while the file is unreadable.
    fn read_table(&self, name: &str) -> Option<Vec<(String, String)>> {
        let text = std::fs::read_to_string(self.table_path(name)).ok()?;
        let value: serde_json::Value = serde_json::from_str(&text).ok()?;
        Some(
            value["routes"]
                .as_array()?
                .iter()
                .map(|r| {
                    let s = |k: &str| r[k].as_str().unwrap_or_default().to_string();
                    (s("destination"), s("next_hop"))
                })
                .collect(),
        )
    }

    fn next_hop(&self, table: &str, destination: &str) -> Option<String> {
        self.read_table(table)?
            .into_iter()
            .find(|(d, _)| d == destination)
            .map(|(_, n)| n)
    }

    /// Asks the server to stop, then SIGTERM, then SIGKILL; always reaps it.
    fn stop(&mut self) {
        let Some(mut child) = self.server.take() else {
            return;
        };
        let _ = client::request(&self.dir, Command::Stop, Duration::from_secs(2));
        if let (Ok(None), Ok(pid)) = (child.try_wait(), i32::try_from(child.id())) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        support::reap(&mut child, Duration::from_secs(5));
    }
}

impl Drop for Ha {
    fn drop(&mut self) {
        self.stop();
    }
}

fn idx(i: u16) -> Res<NodeIndex> {
    NodeIndex::new(i).map_err(|e| e.to_string())
}

/// A `file` node's parameters, validated as the client would.
fn file_params(pairs: &[(Param, &str)]) -> Res<Vec<(Param, String)>> {
    pairs
        .iter()
        .map(|(p, v)| {
            p.validate(v, Provider::File)
                .map(|v| (*p, v.as_str().to_string()))
                .map_err(|e| e.to_string())
        })
        .collect()
}

/// The `-r` route of node `i` in phase 2: 10.x.y.0/24, unique per node.
fn node_route(i: u16) -> String {
    format!("10.{}.{}.0/24", 100 + i / 256, i % 256)
}

fn vm_status(pid: u32, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// CPU time the (single-threaded) server has used, from `/proc/<pid>/schedstat` (ns).
fn server_cpu(pid: u32) -> Option<Duration> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/schedstat")).ok()?;
    let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// CPU time of this whole process, finished threads included: utime + stime of
/// `/proc/self/stat`, in clock ticks of USER_HZ (100 on Linux).
fn own_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After "pid (comm) ": state is field 3, utime 14, stime 15 (1-based in proc(5)).
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|t| t.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "n/a".into())
}

fn kib(v: Option<u64>) -> String {
    match v {
        Some(k) => format!("{:.2} MiB ({k} KiB)", k as f64 / 1024.0),
        None => "n/a".into(),
    }
}

/// 1. wall time of one `show_node -i 1` process, and of `/bin/true` as the spawn floor.
fn bench_process(ha: &Ha, runs: usize, rows: &mut Vec<Row>) -> Res<()> {
    for _ in 0..10 {
        ha.run_timed("show_node", &["-i", "1"])?;
    }
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        times.push(us(ha.run_timed("show_node", &["-i", "1"])?));
    }
    let s = Samples::new(times);
    rows.push(
        Row::new(
            "`show_node -i 1` process, spawn to exit",
            runs.to_string(),
            s.describe(&[("p90", 90.0), ("p99", 99.0)]),
        )
        .target("< 2 ms median", s.median() < 2000.0),
    );
    let mut floor = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        let status = Process::new("/bin/true")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .map_err(|e| format!("cannot run /bin/true: {e}"))?;
        floor.push(us(started.elapsed()));
        if !status.success() {
            return Err("/bin/true failed".into());
        }
    }
    let f = Samples::new(floor);
    rows.push(Row::new(
        "(reference) `/bin/true` process, spawn to exit",
        runs.to_string(),
        f.describe(&[("p90", 90.0)]),
    ));
    Ok(())
}

/// The requests the in-process benchmarks send: the cheapest, and a read of one node.
fn requests() -> Res<[(&'static str, Command); 2]> {
    let one = Target::One(idx(1)?);
    Ok([
        ("Ping", Command::Ping),
        ("ShowNode -i 1", Command::ShowNode { target: one }),
    ])
}

/// 2a. sequential in-process round trips.
fn bench_latency(ha: &Ha, runs: usize, rows: &mut Vec<Row>) -> Res<()> {
    for (name, command) in requests()? {
        for _ in 0..50 {
            ha.expect_ok(command.clone())?;
        }
        let mut times = Vec::with_capacity(runs);
        for _ in 0..runs {
            let started = Instant::now();
            ha.expect_ok(command.clone())?;
            times.push(us(started.elapsed()));
        }
        let s = Samples::new(times);
        rows.push(Row::new(
            format!("in-process `client::request` {name}, round trip"),
            runs.to_string(),
            s.describe(&[("p99", 99.0), ("max", 100.0)]),
        ));
    }
    Ok(())
}

/// 2b. throughput with `clients` threads, each looping `client::request` for `period`.
/// Requests/s, successes, failures, and CPU per successful request of the server and of
/// the client threads.
struct Throughput {
    rate: f64,
    ok: u64,
    failed: u64,
    server_cpu: Option<f64>,
    client_cpu: Option<f64>,
}

fn throughput(ha: &Ha, command: &Command, clients: usize, period: Duration) -> Throughput {
    let stop = Arc::new(AtomicBool::new(false));
    let (server_before, own_before) = (server_cpu(ha.pid()), own_cpu());
    let started = Instant::now();
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let dir = ha.dir.clone();
            let command = command.clone();
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let (mut ok, mut failed) = (0u64, 0u64);
                while !stop.load(Ordering::Relaxed) {
                    match client::request(&dir, command.clone(), client::REPLY_WAIT) {
                        Ok(r) if r.succeeded() => ok += 1,
                        _ => failed += 1,
                    }
                }
                (ok, failed)
            })
        })
        .collect();
    std::thread::sleep(period);
    stop.store(true, Ordering::Relaxed);
    let (mut ok, mut failed) = (0, 0);
    for h in handles {
        let (o, f) = h.join().unwrap_or((0, 0));
        ok += o;
        failed += f;
    }
    let secs = started.elapsed().as_secs_f64();
    let per_request = |before: Option<Duration>, after: Option<Duration>| {
        let used = after?.checked_sub(before?)?;
        (ok > 0).then(|| us(used) / ok as f64)
    };
    Throughput {
        rate: ok as f64 / secs,
        ok,
        failed,
        server_cpu: per_request(server_before, server_cpu(ha.pid())),
        client_cpu: per_request(own_before, own_cpu()),
    }
}

fn bench_throughput(ha: &Ha, period: Duration, rows: &mut Vec<Row>) -> Res<()> {
    for (name, command) in requests()? {
        for clients in [1usize, 4, 16] {
            let t = throughput(ha, &command, clients, period);
            let cpu = |v: Option<f64>| v.map(fmt_us).unwrap_or_else(|| "n/a".into());
            let mut row = Row::new(
                format!("throughput, {name}, {clients} client thread(s)"),
                format!(
                    "{:.1} s, {} ok, {} failed",
                    period.as_secs_f64(),
                    t.ok,
                    t.failed
                ),
                format!(
                    "{:.0} requests/s (CPU per request: server {}, clients {})",
                    t.rate,
                    cpu(t.server_cpu),
                    cpu(t.client_cpu)
                ),
            );
            if clients == 4 {
                row = row.target("≥ 20,000 requests/s", t.rate >= 20_000.0 && t.failed == 0);
            }
            rows.push(row);
        }
    }
    Ok(())
}

/// 4. `node_event -i N -e peerFail` until the table holds the new next hop, alternating the
///    two nodes so every run really writes.
fn bench_failover(ha: &Ha, runs: usize, rows: &mut Vec<Row>) -> Res<()> {
    let mut seen = Vec::with_capacity(runs);
    let mut exited = Vec::with_capacity(runs);
    for run in 0..runs + 2 {
        let (node, want) = if run % 2 == 0 { ("1", B) } else { ("2", A) };
        if ha.next_hop("fo", FAILOVER_ROUTE).as_deref() == Some(want) {
            return Err(format!("failover run {run}: route already via {want}"));
        }
        let mut cmd = ha.command("node_event");
        cmd.args(["-i", node, "-e", "peerFail"]);
        let mut poll = || {
            let moved = ha.next_hop("fo", FAILOVER_ROUTE).as_deref() == Some(want);
            if !moved {
                std::thread::sleep(Duration::from_micros(100));
            }
            moved
        };
        let run_of = support::watch(cmd, Some(&mut poll), Duration::from_secs(30))
            .map_err(|e| format!("failover run {run}: {e}"))?;
        if !run_of.status.success() {
            let status = run_of.status;
            return Err(format!("node_event -i {node} -e peerFail exited {status}"));
        }
        if run >= 2 {
            seen.push(us(run_of.seen.unwrap_or_default()));
            exited.push(us(run_of.exited));
        }
    }
    let s = Samples::new(seen);
    let e = Samples::new(exited);
    rows.push(Row::new(
        "failover: `node_event -i N -e peerFail` spawn → table file polled (0.1 ms) holds new next hop",
        runs.to_string(),
        s.describe(&[("p90", 90.0)]),
    ));
    rows.push(Row::new(
        "failover: same runs, spawn → `node_event` exit (reply after the write)",
        runs.to_string(),
        e.describe(&[("p90", 90.0)]),
    ));
    Ok(())
}

/// Phase 1: a server with the two failover nodes.
fn phase1(setup: &Setup, sizes: &Sizes, rows: &mut Vec<Row>) -> Res<(Option<u64>, String)> {
    let ha = Ha::start(setup, &[])?;
    let replies_at = ha.replies_at();
    ha.write_table("fo", &[(FAILOVER_ROUTE.to_string(), A)])?;
    for (i, hop, mode) in [(1u16, B, "primary"), (2, A, "secondary")] {
        ha.expect_ok(Command::CreateNode(csr_ha::protocol::NodeParams {
            index: idx(i)?,
            provider: Provider::File,
            params: file_params(&[
                (Param::RouteTable, "fo"),
                (Param::NextHop, hop),
                (Param::Route, FAILOVER_ROUTE),
                (Param::Mode, mode),
            ])?,
        }))?;
    }
    let idle_rss = vm_status(ha.pid(), "VmRSS:");
    eprintln!("ha_bench: show_node processes…");
    bench_process(&ha, sizes.process_runs, rows)?;
    eprintln!("ha_bench: in-process round trips…");
    bench_latency(&ha, sizes.latency_runs, rows)?;
    eprintln!("ha_bench: throughput…");
    bench_throughput(&ha, sizes.throughput_for, rows)?;
    eprintln!("ha_bench: failover…");
    bench_failover(&ha, sizes.failover_runs, rows)?;
    Ok((idle_rss, replies_at))
}

/// Creates nodes `1..=MAX_NODES` (primary, one `-r` route each) from 8 client threads.
fn create_nodes(ha: &Ha, table_of: fn(u16) -> String) -> Res<Duration> {
    let started = Instant::now();
    let threads = 8u16;
    let results: Vec<Res<()>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || -> Res<()> {
                    let mut i = 1 + t;
                    while i <= MAX_NODES {
                        let route = node_route(i);
                        let table = table_of(i);
                        ha.expect_ok(Command::CreateNode(csr_ha::protocol::NodeParams {
                            index: idx(i)?,
                            provider: Provider::File,
                            params: file_params(&[
                                (Param::RouteTable, &table),
                                (Param::NextHop, B),
                                (Param::Route, &route),
                                (Param::Mode, "primary"),
                            ])?,
                        }))?;
                        i += threads;
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("creator panicked".into())))
            .collect()
    });
    results.into_iter().collect::<Res<Vec<()>>>()?;
    Ok(started.elapsed())
}

/// Writes every table of `tables` with its nodes' routes pointing at A.
fn reset_tables(ha: &Ha, table_of: fn(u16) -> String) -> Res<Vec<String>> {
    let mut tables: std::collections::BTreeMap<String, Vec<(String, &str)>> = Default::default();
    for i in 1..=MAX_NODES {
        tables
            .entry(table_of(i))
            .or_default()
            .push((node_route(i), A));
    }
    for (name, routes) in &tables {
        ha.write_table(name, routes)?;
    }
    Ok(tables.into_keys().collect())
}

/// 5. `node_event -i all -e revert` wall time; every route must end via B.
fn bench_revert(
    ha: &Ha,
    table_of: fn(u16) -> String,
    label: &str,
    runs: usize,
    rows: &mut Vec<Row>,
) -> Res<()> {
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let tables = reset_tables(ha, table_of)?;
        times.push(us(
            ha.run_timed("node_event", &["-i", "all", "-e", "revert"])?
        ));
        let moved: usize = tables
            .iter()
            .map(|t| {
                ha.read_table(t)
                    .map(|r| r.iter().filter(|(_, n)| n == B).count())
                    .unwrap_or(0)
            })
            .sum();
        if moved != usize::from(MAX_NODES) {
            return Err(format!(
                "revert over {label}: {moved} of {MAX_NODES} routes moved"
            ));
        }
    }
    let s = Samples::new(times);
    let all: Vec<String> = s.0.iter().map(|v| fmt_us(*v)).collect();
    rows.push(Row::new(
        format!("`node_event -i all -e revert`, 1023 primary nodes, {label}, wall time"),
        runs.to_string(),
        format!("median {} (runs: {})", fmt_us(s.median()), all.join(", ")),
    ));
    Ok(())
}

fn one_table(_: u16) -> String {
    "big".into()
}

fn table_mod_64(i: u16) -> String {
    format!("t{}", i % TABLES)
}

/// Phase 2: a fresh server holding 1023 nodes.
fn phase2(setup: &Setup, sizes: &Sizes, rows: &mut Vec<Row>, idle: Option<u64>) -> Res<()> {
    // Generous deadlines so a slow run is measured rather than cut off; the note in
    // BENCHMARKS.md compares the result with the 30 s default.
    let mut ha = Ha::start(
        setup,
        &[
            ("CSR_HA_HANDLER_TIMEOUT", "600"),
            ("CSR_HA_CHECK_TIMEOUT", "60"),
        ],
    )?;
    reset_tables(&ha, one_table)?;
    eprintln!("ha_bench: creating {MAX_NODES} nodes…");
    let took = create_nodes(&ha, one_table)?;
    let rss = vm_status(ha.pid(), "VmRSS:");
    rows.push(Row::new(
        "server VmRSS, idle with 2 nodes (phase 1 server)",
        "1",
        kib(idle),
    ));
    rows.push(
        Row::new(
            format!(
                "server VmRSS holding 1023 nodes (created in-process, 8 threads, {:.1} s incl. live checks)",
                took.as_secs_f64()
            ),
            "1",
            kib(rss),
        )
        .target("< 8 MiB", rss.is_some_and(|k| k < 8 * 1024)),
    );
    ha.expect_ok(Command::ShowNode {
        target: Target::All,
    })?;
    rows.push(Row::new(
        "server VmRSS after one `show_node -i all` (1023 nodes)",
        "1",
        kib(vm_status(ha.pid(), "VmRSS:")),
    ));

    eprintln!("ha_bench: revert over one table…");
    bench_revert(&ha, one_table, "1 table", sizes.revert_runs, rows)?;
    rows.push(Row::new(
        "server VmHWM (peak RSS) after the 1-table reverts",
        "1",
        kib(vm_status(ha.pid(), "VmHWM:")),
    ));

    // Same 1023 nodes on 64 tables: a fresh server (re-creating is cheaper than 1023 set_params).
    ha.stop();
    drop(ha);
    let ha = Ha::start(
        setup,
        &[
            ("CSR_HA_HANDLER_TIMEOUT", "600"),
            ("CSR_HA_CHECK_TIMEOUT", "60"),
        ],
    )?;
    reset_tables(&ha, table_mod_64)?;
    eprintln!("ha_bench: creating {MAX_NODES} nodes on {TABLES} tables…");
    create_nodes(&ha, table_mod_64)?;
    eprintln!("ha_bench: revert over {TABLES} tables…");
    bench_revert(
        &ha,
        table_mod_64,
        "64 tables (16 each)",
        sizes.revert_runs,
        rows,
    )?;
    Ok(())
}

/// `--crowd N`: N `show_node -i 1` processes started together, each waiting up to 30 s
/// (`CSR_HA_TIMEOUT=30`): far more than the request FIFO holds (16 frames). Twice: spawned
/// against the running server, and spawned while the server is paused (SIGSTOP) and resumed
/// once all are started, so that every client meets a full FIFO at once and must wait for room.
/// Counts the clients that failed.
fn bench_crowd(setup: &Setup, clients: usize, rows: &mut Vec<Row>) -> Res<()> {
    let ha = Ha::start(setup, &[])?;
    ha.write_table("fo", &[(FAILOVER_ROUTE.to_string(), A)])?;
    ha.expect_ok(Command::CreateNode(csr_ha::protocol::NodeParams {
        index: idx(1)?,
        provider: Provider::File,
        params: file_params(&[
            (Param::RouteTable, "fo"),
            (Param::NextHop, B),
            (Param::Route, FAILOVER_ROUTE),
        ])?,
    }))?;
    for paused in [false, true] {
        eprintln!("ha_bench: {clients} show_node processes at once (server paused: {paused})…");
        rows.push(crowd(&ha, clients, paused)?);
    }
    Ok(())
}

/// One crowd of `clients` processes; `paused`: the server is stopped while they start.
fn crowd(ha: &Ha, clients: usize, paused: bool) -> Res<Row> {
    use nix::sys::signal::{kill, Signal};
    let server = nix::unistd::Pid::from_raw(ha.pid() as i32);
    if paused {
        kill(server, Signal::SIGSTOP).map_err(|e| format!("cannot pause ha_server: {e}"))?;
    }
    let started = Instant::now();
    let mut children = Vec::with_capacity(clients);
    for _ in 0..clients {
        let child = ha
            .command("show_node")
            .args(["-i", "1"])
            .env("CSR_HA_TIMEOUT", "30")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        match child {
            Ok(child) => children.push((child, None::<Duration>)),
            Err(e) => {
                let _ = kill(server, Signal::SIGCONT);
                return Err(format!("cannot start show_node: {e}"));
            }
        }
    }
    let spawned = started.elapsed();
    if paused {
        kill(server, Signal::SIGCONT).map_err(|e| format!("cannot resume ha_server: {e}"))?;
    }
    let mut codes = std::collections::BTreeMap::<String, usize>::new();
    let mut left = clients;
    while left > 0 {
        for (child, done) in children.iter_mut().filter(|(_, done)| done.is_none()) {
            if let Ok(Some(status)) = child.try_wait() {
                *done = Some(started.elapsed());
                left -= 1;
                let code = status
                    .code()
                    .map_or_else(|| status.to_string(), |c| c.to_string());
                *codes.entry(code).or_default() += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let slowest = children.iter().filter_map(|(_, d)| *d).max();
    let failed = clients - codes.get("0").copied().unwrap_or(0);
    let codes: Vec<String> = codes
        .iter()
        .map(|(c, n)| format!("exit {c}: {n}"))
        .collect();
    let how = if paused {
        "spawned while the server was paused (SIGSTOP), then resumed"
    } else {
        "spawned against the running server"
    };
    Ok(Row::new(
        format!("{clients} `show_node -i 1` processes, CSR_HA_TIMEOUT=30, {how}"),
        "1 batch",
        format!(
            "{failed} failed ({}); all spawned in {:.2} s, the last exited at {:.2} s",
            codes.join(", "),
            spawned.as_secs_f64(),
            slowest.unwrap_or_default().as_secs_f64()
        ),
    )
    .target("0 failures", failed == 0))
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    format!("{cores} CPU(s) available, {cpu}")
}

fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| # | Measurement | Runs | Result | Target | Met |\n|---|---|---|---|---|---|\n",
    );
    for (n, r) in rows.iter().enumerate() {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            n + 1,
            r.what,
            r.runs,
            r.result,
            r.target,
            r.met
        );
    }
    out
}

const HELP: &str = "usage: ha_bench [--quick] [--replies-disk] [--crowd N]\n\
Starts ha_server (in target/release/, beside examples/) in a temporary CSR_HA_DIR (under $TMPDIR, default /tmp)\n\
with the file provider; measures latency, throughput, RSS, failover and revert; prints a\n\
Markdown table. Build in release: cargo build --release --bins && cargo run --release --example ha_bench\n  \
--quick          fewer runs (a smoke test, not numbers to publish)\n  \
--replies-disk   CSR_HA_REPLIES_TMPFS=0 for the server: replies/ is a plain directory in\n                   the HA dir instead of the default symlink to $XDG_RUNTIME_DIR or /dev/shm\n  \
--crowd N        only this: N show_node processes at once, each with CSR_HA_TIMEOUT=30\n";

fn main() -> ExitCode {
    let flags = [
        Flag::switch("--quick"),
        Flag::switch("--replies-disk"),
        Flag::value("--crowd"),
    ];
    let args = match cli::Args::parse(&cli::argv(), "ha_bench", &flags) {
        Ok(args) => args,
        Err(e) => return csr_ha::cmd::run::reject(e, HELP),
    };
    let sizes = if args.has("--quick") {
        Sizes::quick()
    } else {
        Sizes::full()
    };
    let replies_disk = args.has("--replies-disk");
    let setup = match support::bins(&["ha_server"]) {
        Ok(bins) => Setup { bins, replies_disk },
        Err(e) => {
            eprintln!("400: {e}");
            return ExitCode::from(1);
        }
    };
    if cfg!(debug_assertions) {
        eprintln!("ha_bench: warning: debug build; numbers are meaningful only with --release");
    }
    let mut rows = Vec::new();
    let load_before = load_average();
    let mut replies_at = String::from("n/a (phase 1 did not start)");
    let result = match args.get("--crowd").map(str::parse::<usize>) {
        Some(Ok(clients)) if clients > 0 => bench_crowd(&setup, clients, &mut rows),
        Some(_) => Err("--crowd takes a number of clients, e.g. --crowd 1000".to_string()),
        None => phase1(&setup, &sizes, &mut rows).and_then(|(idle, at)| {
            replies_at = at;
            phase2(&setup, &sizes, &mut rows, idle)
        }),
    };
    println!("Machine: {}", machine());
    println!("HA directories under: {}", std::env::temp_dir().display());
    println!(
        "replies/: {replies_at}{}",
        if setup.replies_disk {
            " (--replies-disk: server ran with CSR_HA_REPLIES_TMPFS=0)"
        } else {
            " (server default)"
        }
    );
    println!(
        "Load average (1/5/15 min) at start: {load_before}; at end: {}\n",
        load_average()
    );
    print!("{}", table(&rows));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("400: ha_bench stopped early: {e}");
            ExitCode::from(1)
        }
    }
}
