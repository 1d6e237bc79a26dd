//! GCP VPC routes through the Compute API.
//!
//! GCP routes cannot be edited in place, so a pair of routers fails over by priority: each router
//! owns a route to the same destination (`-a`, at its own priority `-o`; lower wins) and knows
//! its peer's route (`-b`). This provider therefore plans its own work instead of going through
//! [`super::apply`]:
//!
//! ```text
//! peerFail  secondary node: DELETE the peer's route (-b), so this router's route carries the traffic
//!           primary node:   nothing; its own route already wins on priority
//! revert    any mode:       re-INSERT this router's route (-a) if missing; if present, report how
//!                           it differs from the node (network, next hop, destination, priority)
//! verify    INSERT csr-ha-verify-route (priority 65535, this router's next hop), then DELETE it
//! check     GET this router's route and compare it with the node; writes nothing
//! ```
//!
//! REST, base `https://compute.googleapis.com` or `$CSR_HA_GCP_COMPUTE_ENDPOINT`:
//!
//! ```text
//! GET|DELETE {base}/compute/v1/projects/{p}/global/routes/{name}
//! POST       {base}/compute/v1/projects/{p}/global/routes
//!            {"name":"route-a","network":"projects/{p}/global/networks/{vpc}",
//!             "destRange":"10.99.0.0/16","nextHopIp":"10.0.1.20","priority":100}
//! POST       {base}/compute/v1/projects/{p}/global/operations/{op}/wait   (until "status":"DONE")
//! errors     {"error":{"code":403,"message":"Required 'compute.routes.delete' permission ...",
//!             "status":"PERMISSION_DENIED","errors":[{"reason":"forbidden","message":"..."}]}}
//! ```
//!
//! Inserts and deletes answer with an operation; the event waits for it within its deadline and
//! reports its `error.errors[].message`. 429 and 5xx answers are retried with backoff. Tokens
//! come from [`auth`].

mod auth;

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{json, Value};

use super::http::{self, Client, Method, Request, Service};
use super::token_cache::TokenCache;
use super::CloudError;
use crate::event::EventKind;
use crate::event_log::EventLog;
use crate::node::{Cidr, Mode, Node, Param};
use crate::paths::HaDir;
use crate::protocol::Status;
use crate::work::{Action, NodeOutcome, Work};

pub use auth::Source as TokenSource;

/// The route `verify` inserts and deletes to prove write access.
pub const PROBE_ROUTE: &str = "csr-ha-verify-route";
/// The probe's priority: the lowest there is, so it never carries traffic a real route would.
pub const PROBE_PRIORITY: u16 = 65535;

const DEFAULT_COMPUTE_ENDPOINT: &str = "https://compute.googleapis.com";
const DEFAULT_METADATA_HOST: &str = "metadata.google.internal";

/// Where the provider talks to. [`run`] fills it from the environment; tests build it directly so
/// that no test has to change the process environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcpConfig {
    /// Compute API base URL without a trailing `/`.
    pub compute_endpoint: String,
    /// `host[:port]` of the metadata server, used when there is no key file.
    pub metadata_host: String,
    /// A service-account key file; `None` means the metadata server's default service account.
    pub credentials: Option<PathBuf>,
    /// Where tokens are kept between events.
    pub cache: TokenCache,
}

impl GcpConfig {
    /// `$CSR_HA_GCP_COMPUTE_ENDPOINT` (else the public API); `$GCE_METADATA_HOST` (else
    /// `metadata.google.internal`); the key file as [`GcpConfig::key_file`] finds it.
    pub fn from_env(dir: &HaDir) -> GcpConfig {
        let metadata_host = http::endpoint(&["GCE_METADATA_HOST"], DEFAULT_METADATA_HOST);
        let metadata_host = metadata_host
            .strip_prefix("http://")
            .unwrap_or(&metadata_host)
            .to_string();
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        let credentials = GcpConfig::key_file(
            dir,
            var("HOME").map(PathBuf::from).as_deref(),
            var("GOOGLE_APPLICATION_CREDENTIALS").map(PathBuf::from),
        );
        GcpConfig {
            compute_endpoint: http::endpoint(
                &["CSR_HA_GCP_COMPUTE_ENDPOINT"],
                DEFAULT_COMPUTE_ENDPOINT,
            ),
            metadata_host,
            credentials,
            cache: TokenCache::of(dir),
        }
    }

    /// The service-account key file, looked for in this order:
    /// 1. `credentials.json` in the HA directory;
    /// 2. `credentials.json` in the home directory (`/home/guestshell/credentials.json`), where
    ///    the original package kept it, so an upgraded router keeps its key where it is;
    /// 3. `$GOOGLE_APPLICATION_CREDENTIALS`, as Google's own tools read it.
    ///
    /// `None` (no file) means the metadata server's default service account.
    pub fn key_file(
        dir: &HaDir,
        home: Option<&std::path::Path>,
        google_application_credentials: Option<PathBuf>,
    ) -> Option<PathBuf> {
        let in_dir = dir.root().join("credentials.json");
        let in_home = home.map(|h| h.join("credentials.json"));
        [Some(in_dir), in_home]
            .into_iter()
            .flatten()
            .find(|p| p.is_file())
            .or(google_application_credentials)
    }

    /// Where tokens come from: the key file if there is one, else the metadata server.
    pub fn token_source(&self) -> TokenSource {
        match &self.credentials {
            Some(path) => TokenSource::KeyFile(path.clone()),
            None => TokenSource::Metadata(self.metadata_host.clone()),
        }
    }
}

/// Runs `work` with endpoints and credentials from the environment.
pub fn run(work: &Work, deadline: Instant, log: &mut EventLog) -> Vec<NodeOutcome> {
    run_with(work, deadline, log, &GcpConfig::from_env(&work.dir()))
}

/// Runs `work` against the endpoints and credentials of `config`, one node after another.
pub fn run_with(
    work: &Work,
    deadline: Instant,
    log: &mut EventLog,
    config: &GcpConfig,
) -> Vec<NodeOutcome> {
    let mut api = Compute::new(config, deadline);
    work.nodes
        .iter()
        .map(|node| {
            let started = Instant::now();
            let index = node.index.get();
            log.line(index, &format!("Credentials: {}", api.tokens.source()));
            let (outcome, message, wrote) = match Spec::from_node(node) {
                Err(why) => match work.action {
                    Action::Check => (Status::Warning, format!("Warning: {why}"), false),
                    Action::Event(_) | Action::DryRun(_) => (Status::Failed, why, false),
                },
                Ok(spec) => match work.action {
                    Action::Check => check(&mut api, &spec, log),
                    Action::Event(EventKind::PeerFail) => peer_fail(&mut api, &spec, log),
                    Action::Event(EventKind::Revert) => revert(&mut api, &spec, log),
                    Action::Event(EventKind::Verify) => verify(&mut api, &spec, log),
                    // TODO(dry run): plan, testIamPermissions, no write.
                    Action::DryRun(_) => {
                        (Status::Failed, "dry run not implemented yet".into(), false)
                    }
                },
            };
            // The server logs every outcome; the event file gets the error line.
            if outcome == Status::Failed {
                log.line(index, &format!("Error: {message}"));
            }
            let mut out = NodeOutcome::new(index, outcome, message, started);
            if wrote {
                out.message = format!("{}, {} ms", out.message, out.duration_ms);
            }
            out
        })
        .collect()
}

/// What an event did to one node: outcome, message, and whether a route was written.
type Done = (Status, String, bool);

/// A GCP node's parameters, typed.
struct Spec<'a> {
    index: u16,
    mode: Mode,
    project: &'a str,
    vpc: &'a str,
    own: &'a str,
    peer: &'a str,
    next_hop: IpAddr,
    priority: u16,
    destination: Cidr,
}

impl<'a> Spec<'a> {
    /// Values were validated and parsed when they entered the process; the typed ones are read
    /// as they are, so only a missing parameter can fail here.
    fn from_node(node: &'a Node) -> Result<Spec<'a>, String> {
        let missing = node.missing();
        if !missing.is_empty() {
            let flags: Vec<String> = missing
                .iter()
                .map(|p| format!("{} ({})", p.flag(), p.key()))
                .collect();
            return Err(format!(
                "node lacks {}; add with set_params",
                flags.join(", ")
            ));
        }
        let get = |p: Param| node.get(p).unwrap_or_default();
        let bad = |p: Param| {
            format!(
                "{} {:?} is not valid: expected {}",
                p.flag(),
                get(p),
                p.accepted()
            )
        };
        Ok(Spec {
            index: node.index.get(),
            mode: node.mode(),
            project: get(Param::Project),
            vpc: get(Param::Vpc),
            own: get(Param::RouteName),
            peer: get(Param::PeerRouteName),
            next_hop: node.next_hop_ip().ok_or_else(|| bad(Param::NextHopIp))?,
            priority: node.priority().ok_or_else(|| bad(Param::HopPriority))?,
            destination: node.route().ok_or_else(|| bad(Param::Route))?,
        })
    }

    fn network(&self) -> String {
        format!("projects/{}/global/networks/{}", self.project, self.vpc)
    }

    /// The route body to insert under `name` at `priority`.
    fn route_body(&self, name: &str, priority: u16) -> Value {
        json!({
            "name": name,
            "network": self.network(),
            "destRange": self.destination.to_string(),
            "nextHopIp": self.next_hop.to_string(),
            "priority": priority,
        })
    }

    /// `10.99.0.0/16 via 10.0.1.20, priority 100`
    fn describe(&self, priority: u16) -> String {
        format!(
            "{} via {}, priority {priority}",
            self.destination, self.next_hop
        )
    }

    /// An IPv4 next hop cannot carry an IPv6 destination, nor the reverse.
    fn family_error(&self) -> Option<String> {
        (self.next_hop.is_ipv6() != self.destination.is_ipv6()).then(|| {
            format!(
                "next hop {} (-n) cannot carry {} (-r): one is IPv4, the other IPv6",
                self.next_hop, self.destination
            )
        })
    }
}

/// A route as the API shows it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LiveRoute {
    #[serde(default)]
    network: String,
    #[serde(default)]
    dest_range: String,
    next_hop_ip: Option<String>,
    next_hop_instance: Option<String>,
    next_hop_gateway: Option<String>,
    next_hop_ilb: Option<String>,
    next_hop_vpn_tunnel: Option<String>,
    next_hop_network: Option<String>,
    next_hop_peering: Option<String>,
    /// `uint32` in the API, but accept a string too.
    priority: Option<Value>,
}

impl LiveRoute {
    /// The next hop as a user would name it: the IP, else the last path segment of the
    /// instance, gateway, ILB, tunnel, network or peering it points at.
    fn hop(&self) -> String {
        if let Some(ip) = &self.next_hop_ip {
            return ip.clone();
        }
        [
            &self.next_hop_instance,
            &self.next_hop_gateway,
            &self.next_hop_ilb,
            &self.next_hop_vpn_tunnel,
            &self.next_hop_network,
            &self.next_hop_peering,
        ]
        .into_iter()
        .flatten()
        .next()
        .map(|url| url.rsplit('/').next().unwrap_or(url).to_string())
        .unwrap_or_else(|| "(no next hop)".into())
    }

    fn priority(&self) -> Option<u64> {
        match &self.priority {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.parse().ok(),
            _ => None,
        }
    }

    fn destination(&self) -> Option<Cidr> {
        self.dest_range.parse().ok()
    }

    /// `10.99.0.0/16 via 10.0.1.10`
    fn describe(&self) -> String {
        format!("{} via {}", self.dest_range, self.hop())
    }

    /// `projects/p/global/networks/v` out of a full or partial network URL.
    fn network_path(&self) -> &str {
        self.network
            .find("projects/")
            .map_or(self.network.as_str(), |i| &self.network[i..])
    }

    /// How this route differs from what `spec` says, in words (`None`: it does not); priority
    /// only if asked.
    fn differences(&self, spec: &Spec, with_priority: bool) -> Option<String> {
        let mut out = Vec::new();
        let same_network = if self.network.contains("projects/") {
            self.network_path() == spec.network()
        } else {
            self.network.rsplit('/').next() == Some(spec.vpc)
        };
        if !same_network {
            let shown = self.network.rsplit('/').next().unwrap_or(&self.network);
            out.push(format!("network {shown} (node: {})", spec.vpc));
        }
        if self.destination() != Some(spec.destination) {
            out.push(format!(
                "destination {} (node: {})",
                self.dest_range, spec.destination
            ));
        }
        if self
            .next_hop_ip
            .as_deref()
            .and_then(|ip| ip.parse::<IpAddr>().ok())
            != Some(spec.next_hop)
        {
            out.push(format!("next hop {} (node: {})", self.hop(), spec.next_hop));
        }
        if with_priority && self.priority() != Some(u64::from(spec.priority)) {
            let shown = self
                .priority()
                .map_or("(none)".to_string(), |p| p.to_string());
            out.push(format!("priority {shown} (node: {})", spec.priority));
        }
        (!out.is_empty()).then(|| out.join(", "))
    }
}

/// `peerFail`: a secondary node deletes its peer's route; a primary node's own route already
/// wins on priority, so it does nothing.
fn peer_fail(api: &mut Compute, spec: &Spec, log: &mut EventLog) -> Done {
    let (index, project) = (spec.index, spec.project);
    if spec.mode == Mode::Primary {
        log.line(
            index,
            "Primary node: on GCP only a secondary node deletes its peer's route",
        );
        let message = format!(
            "primary node: route {} (priority {}) already wins on priority, peer route {} left in place, no write",
            spec.own, spec.priority, spec.peer
        );
        return (Status::Ok, message, false);
    }
    if spec.own == spec.peer {
        return failed(format!(
            "-a and -b both name route {}: check -b (the peer's route)",
            spec.own
        ));
    }
    let peer = match api.get_route(project, spec.peer, log, index) {
        Ok(peer) => peer,
        Err(e) => return failed(e.to_string()),
    };
    let Some(peer) = peer else {
        let message = format!(
            "peer route {} not in project {project}, nothing to delete",
            spec.peer
        );
        return own_carries(api, spec, log, message, false);
    };
    if peer.destination() != Some(spec.destination) {
        return failed(format!(
            "peer route {} goes to {}, not to this node's {} (-r): not deleted; check -b and -r",
            spec.peer, peer.dest_range, spec.destination
        ));
    }
    if peer
        .next_hop_ip
        .as_deref()
        .and_then(|ip| ip.parse::<IpAddr>().ok())
        == Some(spec.next_hop)
    {
        return failed(format!(
            "peer route {} points at this router's own next hop {}: not deleted; check -b and -n",
            spec.peer, spec.next_hop
        ));
    }
    let started = Instant::now();
    match api.delete_route(project, spec.peer) {
        Ok(op) => log.wrote(
            index,
            &format!(
                "Deleted peer route {} ({}) in {} ms (operation {op})",
                spec.peer,
                peer.describe(),
                started.elapsed().as_millis()
            ),
        ),
        Err(e) => return failed(format!("cannot delete peer route {}: {e}", spec.peer)),
    }
    let message = format!("deleted peer route {} ({})", spec.peer, peer.describe());
    own_carries(api, spec, log, message, true)
}

/// Finishes a `peerFail` message with whether this router's route now carries the traffic.
fn own_carries(
    api: &mut Compute,
    spec: &Spec,
    log: &mut EventLog,
    done: String,
    wrote: bool,
) -> Done {
    let no_write = if wrote { "" } else { ", no write" };
    match api.get_route(spec.project, spec.own, log, spec.index) {
        Ok(Some(own)) => match own.differences(spec, false) {
            None => {
                let verb = if wrote { "now carries it".to_string() } else { format!("carries {}", spec.destination) };
                (Status::Ok, format!("{done}; {} via {} {verb}{no_write}", spec.own, own.hop()), wrote)
            }
            Some(differences) => (
                Status::Warning,
                format!(
                    "Warning: {done}; but this router's route {} differs from the node: {differences}{no_write}",
                    spec.own
                ),
                wrote,
            ),
        },
        Ok(None) => (
            Status::Warning,
            format!(
                "Warning: {done}; but this router's route {} is not in project {}, so nothing carries {}: run revert on this node to re-insert it{no_write}",
                spec.own, spec.project, spec.destination
            ),
            wrote,
        ),
        Err(e) => (
            Status::Warning,
            format!("Warning: {done}; could not read this router's route {}: {e}{no_write}", spec.own),
            wrote,
        ),
    }
}

/// `revert`: puts this router's route back if it is missing; never deletes anything.
fn revert(api: &mut Compute, spec: &Spec, log: &mut EventLog) -> Done {
    if let Some(why) = spec.family_error() {
        return failed(why);
    }
    match api.get_route(spec.project, spec.own, log, spec.index) {
        Err(e) => failed(e.to_string()),
        Ok(Some(live)) => match live.differences(spec, true) {
            None => (
                Status::Ok,
                format!("route {} present ({}), no write", spec.own, spec.describe(spec.priority)),
                false,
            ),
            Some(differences) => (
                Status::Warning,
                format!(
                    "Warning: route {} differs from the node: {differences}; nothing deleted (delete the route and run revert to re-insert it as configured)",
                    spec.own
                ),
                false,
            ),
        },
        Ok(None) => {
            let started = Instant::now();
            match api.insert_route(spec.project, &spec.route_body(spec.own, spec.priority)) {
                Err(e) => failed(format!("cannot re-insert route {}: {e}", spec.own)),
                Ok(op) => {
                    log.wrote(
                        spec.index,
                        &format!(
                            "Inserted route {} ({}) in {} ms (operation {op})",
                            spec.own,
                            spec.describe(spec.priority),
                            started.elapsed().as_millis()
                        ),
                    );
                    let message = format!(
                        "re-inserted route {} ({}) in project {} vpc {}",
                        spec.own,
                        spec.describe(spec.priority),
                        spec.project,
                        spec.vpc
                    );
                    (Status::Ok, message, true)
                }
            }
        }
    }
}

/// `verify`: inserts and deletes a probe route, proving the credentials can write routes.
///
/// Unlike the providers that write the value they read back, this writes nothing a `peerFail`
/// or `revert` wrote: it touches only [`PROBE_ROUTE`] (lowest priority, never carrying traffic a
/// real route carries), never this router's route (`-a`) or its peer's (`-b`), so it cannot undo
/// a failover that lands while it runs, and needs no conditional write.
fn verify(api: &mut Compute, spec: &Spec, log: &mut EventLog) -> Done {
    if let Some(why) = spec.family_error() {
        return failed(why);
    }
    let probe = spec.describe(PROBE_PRIORITY);
    if let Err(why) = insert_probe(api, spec, log) {
        return failed(why);
    }
    let started = Instant::now();
    match api.delete_route(spec.project, PROBE_ROUTE) {
        Ok(op) => log.wrote(
            spec.index,
            &format!("Deleted probe route {PROBE_ROUTE} in {} ms (operation {op})", started.elapsed().as_millis()),
        ),
        Err(e) => {
            return failed(format!(
                "probe route {PROBE_ROUTE} inserted but not deleted: {e}; delete it with gcloud compute routes delete {PROBE_ROUTE} --project {}",
                spec.project
            ))
        }
    }
    let message = format!(
        "inserted and deleted probe route {PROBE_ROUTE} ({probe}) in project {} vpc {}",
        spec.project, spec.vpc
    );
    (Status::Ok, message, true)
}

/// Inserts the probe route. A probe left by an earlier, interrupted verify of this router and
/// route (same network, destination, next hop and priority) is deleted first, so that one
/// interruption does not fail every later verify; any other route of that name is left alone.
fn insert_probe(api: &mut Compute, spec: &Spec, log: &mut EventLog) -> Result<(), String> {
    let body = spec.route_body(PROBE_ROUTE, PROBE_PRIORITY);
    let remove_by_hand = format!(
        "gcloud compute routes delete {PROBE_ROUTE} --project {}",
        spec.project
    );
    let mut cleaned = false;
    loop {
        let started = Instant::now();
        match api.insert_route(spec.project, &body) {
            Ok(op) => {
                log.wrote(
                    spec.index,
                    &format!(
                        "Inserted probe route {PROBE_ROUTE} ({}) in {} ms (operation {op})",
                        spec.describe(PROBE_PRIORITY),
                        started.elapsed().as_millis()
                    ),
                );
                return Ok(());
            }
            Err(CloudError::Api { code, .. }) if code.starts_with("409") && !cleaned => {
                let stale = api
                    .get_route(spec.project, PROBE_ROUTE, log, spec.index)
                    .map_err(|e| {
                        format!("probe route {PROBE_ROUTE} exists and cannot be read: {e}")
                    })?;
                let ours = stale.as_ref().is_none_or(|r| {
                    r.differences(spec, false).is_none()
                        && r.priority() == Some(PROBE_PRIORITY.into())
                });
                if !ours {
                    return Err(format!(
                        "a route named {PROBE_ROUTE} exists in project {} and is not this router's probe: not touched; remove it with {remove_by_hand}",
                        spec.project
                    ));
                }
                if stale.is_some() {
                    api.delete_route(spec.project, PROBE_ROUTE).map_err(|e| {
                        format!("cannot delete probe route {PROBE_ROUTE} left by an earlier verify: {e}")
                    })?;
                    log.wrote(
                        spec.index,
                        &format!("Deleted probe route {PROBE_ROUTE} left by an earlier verify"),
                    );
                }
                cleaned = true;
            }
            Err(e) => return Err(format!("cannot insert probe route {PROBE_ROUTE}: {e}")),
        }
    }
}

/// The read-only check after `create_node`/`set_params`: does this router's route exist as
/// the node describes it?
fn check(api: &mut Compute, spec: &Spec, log: &mut EventLog) -> Done {
    let (project, vpc, own) = (spec.project, spec.vpc, spec.own);
    if let Some(why) = spec.family_error() {
        return (Status::Warning, format!("Warning: {why}"), false);
    }
    match api.get_route(project, own, log, spec.index) {
        Ok(Some(live)) => match live.differences(spec, true) {
            None => (
                Status::Ok,
                format!(
                    "Route {own} in project {project} vpc {vpc} checked ({})",
                    spec.describe(spec.priority)
                ),
                false,
            ),
            Some(differences) => (
                Status::Warning,
                format!("Warning: Route {own} in project {project} differs from the node: {differences}"),
                false,
            ),
        },
        Ok(None) => (
            Status::Warning,
            format!("Warning: Route {own} not found in project {project} vpc {vpc}"),
            false,
        ),
        Err(e) => (
            Status::Warning,
            format!("Warning: could not read Route {own} in project {project}: {e}"),
            false,
        ),
    }
}

fn failed(message: String) -> Done {
    (Status::Failed, message, false)
}

/// One Compute API request, as [`Compute::send`] performs it.
enum Call<'b> {
    Get,
    Delete,
    Insert(&'b Value),
    /// `operations/{op}/wait`: may block server-side, so it gets the rest of the deadline.
    Wait,
}

/// A 2xx body, or the API's 404 (which callers may treat as "absent").
enum Answer {
    Found(Value),
    NotFound(CloudError),
}

/// The Compute API for one handler's run: one agent, one token source, one deadline.
struct Compute {
    base: String,
    http: Client,
    tokens: auth::Tokens,
    deadline: Instant,
    /// The first credentials error, so the other nodes fail at once instead of retrying it.
    auth_failure: Option<CloudError>,
}

impl Compute {
    fn new(config: &GcpConfig, deadline: Instant) -> Compute {
        Compute {
            base: config.compute_endpoint.trim_end_matches('/').to_string(),
            http: Client::new(Service::Gcp),
            tokens: auth::Tokens::new(config.token_source(), config.cache.clone()),
            deadline,
            auth_failure: None,
        }
    }

    fn route_url(&self, project: &str, name: &str) -> String {
        format!(
            "{}/compute/v1/projects/{project}/global/routes/{name}",
            self.base
        )
    }

    /// The route, or `None` if the project has no route of that name.
    fn get_route(
        &mut self,
        project: &str,
        name: &str,
        log: &mut EventLog,
        index: u16,
    ) -> Result<Option<LiveRoute>, CloudError> {
        let started = Instant::now();
        let answer = self.send(
            Call::Get,
            &self.route_url(project, name),
            &format!("GET route {name}"),
        )?;
        let took = started.elapsed().as_millis();
        match answer {
            Answer::NotFound(_) => {
                log.line(
                    index,
                    &format!("Read route {name}: not in project {project} ({took} ms)"),
                );
                Ok(None)
            }
            Answer::Found(body) => {
                let route: LiveRoute = serde_json::from_value(body).map_err(|e| {
                    CloudError::Transport(format!(
                        "GET route {name}: the API answered with an unreadable route ({e})"
                    ))
                })?;
                let priority = route
                    .priority()
                    .map_or("(none)".to_string(), |p| p.to_string());
                log.line(
                    index,
                    &format!(
                        "Read route {name}: {} priority {priority} network {} ({took} ms)",
                        route.describe(),
                        route.network_path()
                    ),
                );
                Ok(Some(route))
            }
        }
    }

    /// Deletes a route and waits for the operation; returns the operation's name.
    fn delete_route(&mut self, project: &str, name: &str) -> Result<String, CloudError> {
        let what = format!("DELETE route {name}");
        match self.send(Call::Delete, &self.route_url(project, name), &what)? {
            Answer::Found(op) => self.finish(project, op, &what),
            // Gone already (e.g. a retried DELETE whose first try went through).
            Answer::NotFound(_) => Ok("none, already absent".into()),
        }
    }

    /// Inserts a route and waits for the operation; returns the operation's name.
    fn insert_route(&mut self, project: &str, body: &Value) -> Result<String, CloudError> {
        let name = body["name"].as_str().unwrap_or_default();
        let what = format!("INSERT route {name}");
        let url = format!("{}/compute/v1/projects/{project}/global/routes", self.base);
        match self.send(Call::Insert(body), &url, &what)? {
            Answer::Found(op) => self.finish(project, op, &what),
            Answer::NotFound(e) => Err(e),
        }
    }

    /// Waits until `op` is DONE, within the deadline, and reports its error if it has one.
    fn finish(&mut self, project: &str, mut op: Value, what: &str) -> Result<String, CloudError> {
        let mut polls = 0u32;
        loop {
            let name = op["name"].as_str().unwrap_or_default().to_string();
            let status = op["status"].as_str().unwrap_or("(no status)").to_string();
            if status == "DONE" {
                return match operation_error(&op) {
                    Some(e) => Err(e),
                    None => Ok(name),
                };
            }
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(CloudError::Transport(format!(
                    "{what}: the API answered with an operation without a usable name"
                )));
            }
            let still = || {
                CloudError::Transport(format!(
                    "{what}: operation {name} still {status} when the event's deadline came; see gcloud compute operations describe {name} --global --project {project}"
                ))
            };
            if polls > 0 {
                match http::backoff(polls - 1, self.deadline) {
                    Some(wait) => std::thread::sleep(wait),
                    None => return Err(still()),
                }
            }
            let url = format!(
                "{}/compute/v1/projects/{project}/global/operations/{name}/wait",
                self.base
            );
            op = match self.send(Call::Wait, &url, what) {
                Ok(Answer::Found(next)) => next,
                Ok(Answer::NotFound(e)) => return Err(e),
                Err(CloudError::Transport(_)) if !self.time_left() => return Err(still()),
                Err(e) => return Err(e),
            };
            polls += 1;
        }
    }

    fn time_left(&self) -> bool {
        Instant::now() + Duration::from_millis(100) < self.deadline
    }

    /// Sends one request with a fresh token through [`Client::send`] (429, 5xx and, when the
    /// request may be sent again, connection errors retried within the deadline), renewing the
    /// token once on 401.
    fn send(&mut self, call: Call, url: &str, what: &str) -> Result<Answer, CloudError> {
        let mut renewed = false;
        loop {
            let request = match call {
                Call::Get => Request::get(url),
                Call::Delete => Request::new(Method::Delete, url),
                Call::Insert(body) => Request::new(Method::Post, url)
                    .json(body.to_string())
                    .once_only(),
                Call::Wait => Request::new(Method::Post, url).body(Vec::new()).long_poll(),
            }
            .secret_header("Authorization", format!("Bearer {}", self.token()?));
            let reply = self.http.send(&request, self.deadline).map_err(|e| {
                CloudError::Transport(format!(
                    "{what}: GCP Compute API at {} unreachable: {e}",
                    self.base
                ))
            })?;
            match reply.status {
                200..=299 => {
                    return serde_json::from_str(&reply.body)
                        .map(Answer::Found)
                        .map_err(|e| {
                            CloudError::Transport(format!(
                                "{what}: the GCP Compute API answered HTTP {} with no JSON ({e})",
                                reply.status
                            ))
                        })
                }
                401 if !renewed => {
                    self.tokens.invalidate();
                    renewed = true;
                }
                404 => return Ok(Answer::NotFound(reply.error("GCP", parse_error))),
                _ => return Err(reply.error("GCP", parse_error)),
            }
        }
    }

    fn token(&mut self) -> Result<String, CloudError> {
        if let Some(e) = &self.auth_failure {
            return Err(e.clone());
        }
        self.tokens
            .get(self.deadline)
            .map(|token| token.expose().to_string())
            .inspect_err(|e| self.auth_failure = Some(e.clone()))
    }
}

/// The API's error body: its status or first reason after the HTTP status as the code
/// (`403 PERMISSION_DENIED`) and its own message; `None` if the body is not the API's.
fn parse_error(status: u16, body: &str) -> Option<(String, String)> {
    #[derive(Deserialize)]
    struct Body {
        error: ErrorJson,
    }
    #[derive(Deserialize)]
    struct ErrorJson {
        message: Option<String>,
        status: Option<String>,
        #[serde(default)]
        errors: Vec<Detail>,
    }
    #[derive(Deserialize, Default)]
    struct Detail {
        reason: Option<String>,
        message: Option<String>,
    }
    let error = serde_json::from_str::<Body>(body).ok()?.error;
    let first = error.errors.into_iter().next().unwrap_or_default();
    let message = error.message.or(first.message)?;
    let code = match error.status.or(first.reason) {
        Some(kind) => format!("{status} {kind}"),
        None => status.to_string(),
    };
    Some((code, message))
}

/// A DONE operation's `error.errors[]`, if any, as one error.
fn operation_error(op: &Value) -> Option<CloudError> {
    let errors = op["error"]["errors"].as_array()?;
    if errors.is_empty() {
        return None;
    }
    let messages: Vec<&str> = errors
        .iter()
        .filter_map(|e| e["message"].as_str())
        .collect();
    let code = errors[0]["code"].as_str().unwrap_or("OPERATION_FAILED");
    let name = op["name"].as_str().unwrap_or("(unnamed)");
    Some(CloudError::Api {
        cloud: "GCP",
        status: None,
        code: code.to_string(),
        message: format!("{} (operation {name})", messages.join("; ")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(value: Value) -> LiveRoute {
        serde_json::from_value(value).expect("route json")
    }

    #[test]
    fn api_errors_keep_the_apis_words() {
        let body = r#"{"error":{"code":403,"message":"Required 'compute.routes.delete' permission","status":"PERMISSION_DENIED","errors":[{"reason":"forbidden","message":"x"}]}}"#;
        let error = |status, body| http::Reply::for_test(status, body).error("GCP", parse_error);
        assert_eq!(
            error(403, body).to_string(),
            "GCP 403 PERMISSION_DENIED: Required 'compute.routes.delete' permission"
        );
        assert_eq!(
            error(502, "<html> Bad\n gateway </html>").to_string(),
            "GCP HTTP502: HTTP status 502: <html> Bad gateway </html>"
        );
    }

    #[test]
    fn operation_errors_are_joined() {
        let op = json!({"name":"op-1","status":"DONE","error":{"errors":[
            {"code":"RESOURCE_ALREADY_EXISTS","message":"a"},{"code":"X","message":"b"}]}});
        assert_eq!(
            operation_error(&op).map(|e| e.to_string()),
            Some("GCP RESOURCE_ALREADY_EXISTS: a; b (operation op-1)".into())
        );
        assert!(operation_error(&json!({"name":"op-1","status":"DONE"})).is_none());
    }

    #[test]
    fn differences_compare_canonical_values() {
        let node = crate::node_db::parse_line(
            "index=3 provider=gcp cloud=gcp project=proj-1 vpc=vpc-1 routeName=route-a \
             peerRouteName=route-b nextHopIp=2001:db8::20 hopPriority=0 route=2001:db8:99::/48",
        )
        .expect("a node_file line");
        let spec = Spec::from_node(&node).expect("spec");
        let same = live(json!({
            "network": "https://www.googleapis.com/compute/v1/projects/proj-1/global/networks/vpc-1",
            "destRange": "2001:db8:99:0::/48", "nextHopIp": "2001:db8:0::20", "priority": 0}));
        assert_eq!(same.differences(&spec, true), None);
        let other = live(json!({
            "network": "projects/proj-1/global/networks/vpc-2", "destRange": "2001:db8:99::/48",
            "nextHopGateway": "projects/proj-1/global/gateways/default-internet-gateway", "priority": "7"}));
        assert_eq!(
            other.differences(&spec, true).as_deref(),
            Some(
                "network vpc-2 (node: vpc-1), next hop default-internet-gateway (node: 2001:db8::20), \
                 priority 7 (node: 0)"
            )
        );
    }
}
