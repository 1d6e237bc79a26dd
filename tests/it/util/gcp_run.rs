//! The GCP provider run in-process against the fake (`gcp_fake`), as `ha_event_handler` runs
//! it: a pair of routers' validated nodes, the config pointing at the fake, the event log opened
//! and finished, and what the run left behind. Shared by the `gcp*` tests.

use super::gcp_fake::GcpFake;
use csr_ha::cloud::gcp::{self, GcpConfig};
use csr_ha::cloud::token_cache::TokenCache;
use csr_ha::event::EventKind;
use csr_ha::event_log::EventLog;
use csr_ha::node::{Node, Param, Provider};
use csr_ha::work::{Action, NodeOutcome};
use std::path::Path;
use std::time::{Duration, Instant};

pub const PROJECT: &str = "proj-1";

pub const VPC: &str = "vpc-1";

/// A router's node: its own route `own` via `hop` at `priority`, its peer's route `peer`.
pub fn node(
    index: u16,
    mode: &str,
    own: &str,
    peer: &str,
    hop: &str,
    priority: &str,
    route: &str,
) -> Node {
    let params = [
        (Param::Cloud, "gcp"),
        (Param::Project, PROJECT),
        (Param::Vpc, VPC),
        (Param::RouteName, own),
        (Param::PeerRouteName, peer),
        (Param::NextHopIp, hop),
        (Param::HopPriority, priority),
        (Param::Route, route),
        (Param::Mode, mode),
    ];
    super::node(index, Provider::Gcp, &params)
}

/// Node 3 on router A (10.0.1.20, route-a at priority 100); its peer B owns route-b.
pub fn router_a(mode: &str) -> Node {
    node(
        3,
        mode,
        "route-a",
        "route-b",
        "10.0.1.20",
        "100",
        "10.99.0.0/16",
    )
}

/// The pair's routes as they are before a failover.
pub fn seed_pair(fake: &GcpFake) {
    fake.put_route(PROJECT, VPC, "route-a", "10.99.0.0/16", "10.0.1.20", 100);
    fake.put_route(PROJECT, VPC, "route-b", "10.99.0.0/16", "10.0.1.10", 200);
}

pub fn config(fake: &GcpFake) -> GcpConfig {
    GcpConfig {
        compute_endpoint: fake.url.clone(),
        resource_manager_endpoint: fake.url.clone(),
        metadata_host: fake.host.clone(),
        credentials: None,
        cache: TokenCache::at(fake.cache.path().join("credentials")),
    }
}

/// Runs one action as a handler would: event log opened, provider run, logs written.
pub fn run(config: &GcpConfig, dir: &Path, action: Action, nodes: Vec<Node>) -> Vec<NodeOutcome> {
    let work = super::work(action, Provider::Gcp, dir, nodes);
    let deadline = Instant::now() + Duration::from_millis(work.deadline_ms);
    let mut log = EventLog::new(&work);
    let outcomes = gcp::run_with(&work, deadline, &mut log, config);
    log.finish(&outcomes);
    outcomes
}

pub fn event(config: &GcpConfig, dir: &Path, kind: EventKind, node: Node) -> NodeOutcome {
    run(config, dir, Action::Event(kind), vec![node]).remove(0)
}

/// Every file under `dir`, with its text.
/// The scenario most tests start from: router A, a secondary, handles its peer's failure.
pub fn peer_fail(config: &GcpConfig, dir: &Path) -> NodeOutcome {
    event(config, dir, EventKind::PeerFail, router_a("secondary"))
}

/// [`event`] with the config of `fake`.
pub fn event_on(fake: &GcpFake, dir: &Path, kind: EventKind, node: Node) -> NodeOutcome {
    event(&config(fake), dir, kind, node)
}

/// A started fake with no routes, and an HA directory.
pub fn started() -> (GcpFake, tempfile::TempDir) {
    (GcpFake::start(), tempfile::tempdir().expect("tempdir"))
}

/// A started fake holding the pair's routes ([`seed_pair`]), and an HA directory.
pub fn seeded() -> (GcpFake, tempfile::TempDir) {
    let (fake, dir) = started();
    seed_pair(&fake);
    (fake, dir)
}

pub fn files(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            let text =
                String::from_utf8_lossy(&std::fs::read(&path).expect("read file")).into_owned();
            out.push((path.display().to_string(), text));
        }
    }
    out
}

pub fn event_logs(dir: &Path) -> Vec<String> {
    files(dir)
        .into_iter()
        .filter(|(p, _)| p.contains("/events/node_"))
        .map(|(_, t)| t)
        .collect()
}

/// A fresh 2048-bit RSA key as PKCS#8 PEM, from the openssl CLI.
pub fn generate_key() -> String {
    let out = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ])
        .output()
        .expect("the JWT tests need the openssl command to generate an RSA key");
    assert!(
        out.status.success(),
        "openssl genpkey failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("PEM is text")
}

/// `create_node` of node 3, router A's secondary node of the pair [`seed_pair`] writes, typed as a
/// user would; asserts it answered `200: `.
pub fn create_node_3(ha: &super::Ha) {
    ha.ok_starts(
        &format!(
            "create_node -i 3 -p gcp -g {PROJECT} -v {VPC} -a route-a -b route-b -n 10.0.1.20 \
             -o 100 -r 10.99.0.0/16 -m secondary"
        ),
        "200: ",
    );
}
