//! GCP VPC routes through the Compute API.
//!
//! GCP routes cannot be edited in place, so a pair of routers fails over by priority: each router
//! owns a route to the same destination (`-a`, at its own priority `-o`; lower wins) and knows
//! its peer's route (`-b`). This provider therefore plans its own work instead of going through
//! [`super::planner::apply`]:
//!
//! ```text
//! peerFail  secondary node: DELETE the peer's route (-b), so this router's route carries the traffic
//!           primary node:   nothing; its own route already wins on priority
//! revert    any mode:       re-INSERT this router's route (-a) if missing; if present, report how
//!                           it differs from the node (network, next hop, destination, priority)
//! verify    INSERT csr-ha-verify-route (priority 65535, this router's next hop), then DELETE it
//! check     GET this router's route and compare it with the node; writes nothing
//! dry run   any event: the same reads and plan, no write; a write the plan needs is proven
//!           permitted with Resource Manager's testIamPermissions, once per project and VPC
//! ```
//!
//! The provider is `VpcRoutes`; the requests and answers are in `client.rs`
//! (`ComputeClient`); tokens come from `auth.rs`. An event on a node
//! whose `-r` and `-n` are of different address families fails before any request: no IPv4
//! next hop can carry an IPv6 route, nor the reverse.

mod auth;
mod client;

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Instant;

use serde_json::{json, Value};

use super::http;
use super::planner::{all_required, log_dry_run, no_write_needed, would_go};
use super::token_cache::TokenCache;
use super::{CloudError, Permission};
use crate::event::EventKind;
use crate::event_log::EventLog;
use crate::node::{Cidr, Mode, Node, Param};
use crate::paths::HaDir;
use crate::protocol::Status;
use crate::work::{Action, NodeOutcome, Work};
use client::{ComputeClient, LiveRoute, ASKED, DELETE, INSERT};

pub use auth::Source as TokenSource;
pub use client::RESOURCE_BASE;

/// The route `verify` inserts and deletes to prove write access.
pub const PROBE_ROUTE: &str = "csr-ha-verify-route";
/// The probe's priority: the lowest there is, so it never carries traffic a real route would.
pub const PROBE_PRIORITY: u16 = 65535;

const DEFAULT_COMPUTE_ENDPOINT: &str = "https://compute.googleapis.com";
const DEFAULT_RESOURCE_MANAGER_ENDPOINT: &str = "https://cloudresourcemanager.googleapis.com";
const DEFAULT_METADATA_HOST: &str = "metadata.google.internal";

/// Where the provider talks to. [`run`] fills it from the environment; tests build it directly so
/// that no test has to change the process environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcpConfig {
    /// Compute API base URL without a trailing `/`.
    pub compute_endpoint: String,
    /// Cloud Resource Manager base URL (a dry run's permission probe), without a trailing `/`.
    pub resource_manager_endpoint: String,
    /// `host[:port]` of the metadata server, used when there is no credentials file.
    pub metadata_host: String,
    /// A credentials file (service-account key or `authorized_user`); `None` means the metadata
    /// server's default service account.
    pub credentials: Option<PathBuf>,
    /// Where tokens are kept between events.
    pub cache: TokenCache,
}

impl GcpConfig {
    /// `$CSR_HA_GCP_COMPUTE_ENDPOINT` and `$CSR_HA_GCP_RESOURCE_MANAGER_ENDPOINT` (else the
    /// public APIs); `$GCE_METADATA_HOST` (else
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
            resource_manager_endpoint: http::endpoint(
                &["CSR_HA_GCP_RESOURCE_MANAGER_ENDPOINT"],
                DEFAULT_RESOURCE_MANAGER_ENDPOINT,
            ),
            metadata_host,
            credentials,
            cache: TokenCache::of(dir),
        }
    }

    /// The credentials file (a service-account key or `authorized_user` credentials), looked
    /// for in this order:
    /// 1. `credentials.json` in the HA directory;
    /// 2. `credentials.json` in the home directory (`/home/guestshell/credentials.json`), where
    ///    the original package kept it, so an upgraded router keeps its key where it is;
    /// 3. `$GOOGLE_APPLICATION_CREDENTIALS`, as Google's own tools read it (used even if it names
    ///    no file, so the error names it);
    /// 4. gcloud's `~/.config/gcloud/application_default_credentials.json` (what `gcloud auth
    ///    application-default login` writes), as the original's oauth2client read it.
    ///
    /// `None` (no file) means the metadata server's default service account.
    pub fn key_file(
        dir: &HaDir,
        home: Option<&std::path::Path>,
        google_application_credentials: Option<PathBuf>,
    ) -> Option<PathBuf> {
        let in_dir = dir.root().join("credentials.json");
        let in_home = home.map(|h| h.join("credentials.json"));
        let found = |p: &PathBuf| p.is_file();
        [Some(in_dir), in_home]
            .into_iter()
            .flatten()
            .find(found)
            .or(google_application_credentials)
            .or_else(|| home.map(gcloud_file).filter(found))
    }

    /// Where tokens come from: the key file if there is one, else the metadata server.
    pub fn token_source(&self) -> TokenSource {
        match &self.credentials {
            Some(path) => TokenSource::KeyFile(path.clone()),
            None => TokenSource::Metadata(self.metadata_host.clone()),
        }
    }
}

/// gcloud's application default credentials in `home`:
/// `.config/gcloud/application_default_credentials.json`.
pub fn gcloud_file(home: &std::path::Path) -> PathBuf {
    home.join(".config")
        .join("gcloud")
        .join("application_default_credentials.json")
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
    let mut routes = VpcRoutes::open(config, deadline);
    work.nodes
        .iter()
        .map(|node| {
            let started = Instant::now();
            let index = node.index.get();
            log.line(
                index,
                &format!("Credentials: {}", routes.api.tokens.source()),
            );
            let (outcome, message, wrote) = routes.act(work.action, node, log);
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

/// The GCP provider for one handler's run: the VPC routes of the nodes' projects, reached through
/// one [`ComputeClient`]. It is no [`RouteTable`](super::RouteTable): GCP routes are not edited
/// in place, so each event is its own plan of inserts and deletes (see the module's table).
struct VpcRoutes {
    api: ComputeClient,
}

impl VpcRoutes {
    fn open(config: &GcpConfig, deadline: Instant) -> VpcRoutes {
        VpcRoutes {
            api: ComputeClient::new(config, deadline),
        }
    }

    /// What `action` does on `node`: its event, dry run or check.
    fn act(&mut self, action: Action, node: &Node, log: &mut EventLog) -> Done {
        let api = &mut self.api;
        match Spec::from_node(node) {
            Err(why) => match action {
                Action::Check => (Status::Warning, format!("Warning: {why}"), false),
                Action::Event(_) | Action::DryRun(_) => (Status::Failed, why, false),
            },
            Ok(spec) => match (action, spec.family_error()) {
                (Action::Check, _) => check(api, &spec, log),
                (_, Some(why)) => failed(format!(
                    "{why}; nothing written: correct -n or -r with set_params"
                )),
                (Action::Event(EventKind::PeerFail), None) => peer_fail(api, &spec, log),
                (Action::Event(EventKind::Revert), None) => revert(api, &spec, log),
                (Action::Event(EventKind::Verify), None) => verify(api, &spec, log),
                (Action::DryRun(kind), None) => dry_run(kind, api, &spec, log),
            },
        }
    }
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
        all_required(node).map_err(|e| e.to_string())?;
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

    /// `projects/{p}/global/networks/{vpc}`, as a route's network URL ends.
    fn network(&self) -> String {
        format!("projects/{}/global/networks/{}", self.project, self.vpc)
    }

    /// The network as a route insert names it: a fully-qualified URL ([`client::RESOURCE_BASE`]).
    fn network_url(&self) -> String {
        format!("{}/{}", client::RESOURCE_BASE, self.network())
    }

    /// The route body to insert under `name` at `priority`.
    fn route_body(&self, name: &str, priority: u16) -> Value {
        json!({
            "name": name,
            "network": self.network_url(),
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

    /// Whether this node's credentials hold every one of `needed` in its project
    /// ([`ComputeClient::permission`]).
    fn permission(
        &self,
        api: &mut ComputeClient,
        needed: &[&str],
        log: &mut EventLog,
    ) -> Permission {
        api.permission(self.project, self.vpc, needed, log, self.index)
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

impl LiveRoute {
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
        if self.next_hop() != Some(spec.next_hop) {
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

/// What `peerFail` has to do on a node, decided from reads alone.
enum PeerFailPlan {
    /// A primary node's own route already wins on priority: nothing to do.
    Primary,
    /// The peer's route is gone already.
    PeerAbsent,
    /// Delete the peer's route (as read).
    Delete(Box<LiveRoute>),
}

/// Reads the peer's route and decides; `Err` is why nothing may be deleted.
fn plan_peer_fail(
    api: &mut ComputeClient,
    spec: &Spec,
    log: &mut EventLog,
) -> Result<PeerFailPlan, String> {
    if spec.mode == Mode::Primary {
        log.line(
            spec.index,
            "Primary node: on GCP only a secondary node deletes its peer's route",
        );
        return Ok(PeerFailPlan::Primary);
    }
    if spec.own == spec.peer {
        return Err(format!(
            "-a and -b both name route {}: check -b (the peer's route)",
            spec.own
        ));
    }
    let Some(peer) = api
        .get_route(spec.project, spec.peer, log, spec.index)
        .map_err(|e| e.to_string())?
    else {
        return Ok(PeerFailPlan::PeerAbsent);
    };
    let peer = Box::new(peer);
    if peer.destination() != Some(spec.destination) {
        return Err(format!(
            "peer route {} goes to {}, not to this node's {} (-r): not deleted; check -b and -r",
            spec.peer, peer.dest_range, spec.destination
        ));
    }
    if peer.next_hop() == Some(spec.next_hop) {
        return Err(format!(
            "peer route {} points at this router's own next hop {}: not deleted; check -b and -n",
            spec.peer, spec.next_hop
        ));
    }
    Ok(PeerFailPlan::Delete(peer))
}

/// `primary node: route route-a (priority 100) already wins on priority, peer route route-b left in place`
fn primary_note(spec: &Spec) -> String {
    format!(
        "primary node: route {} (priority {}) already wins on priority, peer route {} left in place",
        spec.own, spec.priority, spec.peer
    )
}

/// `peer route route-b not in project proj-1`
fn peer_absent_note(spec: &Spec) -> String {
    format!("peer route {} not in project {}", spec.peer, spec.project)
}

/// `peerFail`: a secondary node deletes its peer's route; a primary node's own route already
/// wins on priority, so it does nothing.
fn peer_fail(api: &mut ComputeClient, spec: &Spec, log: &mut EventLog) -> Done {
    let peer = match plan_peer_fail(api, spec, log) {
        Err(why) => return failed(why),
        Ok(PeerFailPlan::Primary) => {
            return (
                Status::Ok,
                format!("{}, no write", primary_note(spec)),
                false,
            )
        }
        Ok(PeerFailPlan::PeerAbsent) => {
            let message = format!("{}, nothing to delete", peer_absent_note(spec));
            return own_carries(api, spec, log, message, false);
        }
        Ok(PeerFailPlan::Delete(peer)) => peer,
    };
    let started = Instant::now();
    match api.delete_route(spec.project, spec.peer) {
        Ok(op) => log.wrote(
            spec.index,
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

/// Reads this router's route: `Ok` with its next hop if it carries the node's destination as
/// the node says, else what is wrong (`this router's route route-a is not in project …`).
fn own_route(api: &mut ComputeClient, spec: &Spec, log: &mut EventLog) -> Result<String, String> {
    match api.get_route(spec.project, spec.own, log, spec.index) {
        Ok(Some(own)) => match own.differences(spec, false) {
            None => Ok(own.hop()),
            Some(differences) => Err(format!(
                "this router's route {} differs from the node: {differences}",
                spec.own
            )),
        },
        Ok(None) => Err(format!(
            "this router's route {} is not in project {}, so nothing carries {}: run revert on this node to re-insert it",
            spec.own, spec.project, spec.destination
        )),
        Err(e) => Err(format!(
            "could not read this router's route {}: {e}",
            spec.own
        )),
    }
}

/// Finishes a `peerFail` message with whether this router's route now carries the traffic.
fn own_carries(
    api: &mut ComputeClient,
    spec: &Spec,
    log: &mut EventLog,
    done: String,
    wrote: bool,
) -> Done {
    let no_write = if wrote { "" } else { ", no write" };
    match own_route(api, spec, log) {
        Ok(hop) => {
            let verb = if wrote {
                "now carries it".to_string()
            } else {
                format!("carries {}", spec.destination)
            };
            let message = format!("{done}; {} via {hop} {verb}{no_write}", spec.own);
            (Status::Ok, message, wrote)
        }
        Err(wrong) => (
            Status::Warning,
            format!("Warning: {done}; but {wrong}{no_write}"),
            wrote,
        ),
    }
}

/// What `revert` has to do on a node, decided from reads alone.
enum RevertPlan {
    /// This router's route is there as the node describes it.
    Present,
    /// It is there but differs: reported, never deleted.
    Differs(String),
    /// It is missing: insert it.
    Insert,
}

fn plan_revert(
    api: &mut ComputeClient,
    spec: &Spec,
    log: &mut EventLog,
) -> Result<RevertPlan, String> {
    match api.get_route(spec.project, spec.own, log, spec.index) {
        Err(e) => Err(e.to_string()),
        Ok(Some(live)) => Ok(match live.differences(spec, true) {
            None => RevertPlan::Present,
            Some(differences) => RevertPlan::Differs(format!(
                "Warning: route {} differs from the node: {differences}; nothing deleted (delete the route and run revert to re-insert it as configured)",
                spec.own
            )),
        }),
        Ok(None) => Ok(RevertPlan::Insert),
    }
}

/// `revert`: puts this router's route back if it is missing; never deletes anything.
fn revert(api: &mut ComputeClient, spec: &Spec, log: &mut EventLog) -> Done {
    match plan_revert(api, spec, log) {
        Err(why) => failed(why),
        Ok(RevertPlan::Present) => (
            Status::Ok,
            format!(
                "route {} present ({}), no write",
                spec.own,
                spec.describe(spec.priority)
            ),
            false,
        ),
        Ok(RevertPlan::Differs(warning)) => (Status::Warning, warning, false),
        Ok(RevertPlan::Insert) => {
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
fn verify(api: &mut ComputeClient, spec: &Spec, log: &mut EventLog) -> Done {
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
fn insert_probe(api: &mut ComputeClient, spec: &Spec, log: &mut EventLog) -> Result<(), String> {
    let body = spec.route_body(PROBE_ROUTE, PROBE_PRIORITY);
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
                if stale.as_ref().is_some_and(|r| !is_own_probe(r, spec)) {
                    return Err(foreign_probe(spec));
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

/// Whether `route` (named [`PROBE_ROUTE`]) is one this router's verify inserted: same network,
/// destination, next hop and the probe's priority.
fn is_own_probe(route: &LiveRoute, spec: &Spec) -> bool {
    route.differences(spec, false).is_none() && route.priority() == Some(PROBE_PRIORITY.into())
}

/// Why a [`PROBE_ROUTE`] that is not this router's is left alone.
fn foreign_probe(spec: &Spec) -> String {
    format!(
        "a route named {PROBE_ROUTE} exists in project {} and is not this router's probe: not touched; remove it with gcloud compute routes delete {PROBE_ROUTE} --project {}",
        spec.project, spec.project
    )
}

/// The read-only check after `create_node`/`set_params`: does this router's route exist as
/// the node describes it?
fn check(api: &mut ComputeClient, spec: &Spec, log: &mut EventLog) -> Done {
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

/// `node_event … --dry-run` of `kind` on one node: the same reads and plan as the event
/// ([`plan_peer_fail`], [`plan_revert`]), no write, and the write the plan needs proven
/// permitted without writing it, in the planner's words ([`would_go`], [`no_write_needed`]).
///
/// ```text
/// peerFail  secondary, peer route present: 10.99.0.0/16 in vpc vpc-1 would go via 10.0.1.20
///           (now 10.0.1.10), deleting peer route route-b; write permitted
///           peer route absent / primary: … already via 10.0.1.20, no write needed
/// revert    route missing: 10.99.0.0/16 in vpc vpc-1 would go via 10.0.1.20 (now route route-a
///           missing), re-inserting it at priority 100; write permitted
/// verify    probe route csr-ha-verify-route (…, priority 65535) would be inserted and deleted
///           in vpc vpc-1; write permitted
/// ```
///
/// The proof is Cloud Resource Manager's `projects.testIamPermissions`, asked once per project
/// and VPC per handler run for all three permissions the provider's writes need; each node is
/// then judged on what its own plan needs (a delete `compute.routes.delete`; an insert
/// `compute.routes.create` and `compute.networks.updatePolicy`). Where the API cannot answer
/// (disabled, a token without a `cloud-platform` scope, unreachable), the write is "not proven":
/// a warning, not a failure. A node whose plan needs no write is not probed.
fn dry_run(kind: EventKind, api: &mut ComputeClient, spec: &Spec, log: &mut EventLog) -> Done {
    let (status, message) = match kind {
        EventKind::PeerFail => dry_run_peer_fail(api, spec, log),
        EventKind::Revert => dry_run_revert(api, spec, log),
        EventKind::Verify => dry_run_verify(api, spec, log),
    };
    log_dry_run(log, spec.index, &message);
    (status, message, false)
}

/// `10.99.0.0/16 in vpc vpc-1`
fn place(spec: &Spec) -> String {
    format!("{} in vpc {}", spec.destination, spec.vpc)
}

fn dry_run_peer_fail(api: &mut ComputeClient, spec: &Spec, log: &mut EventLog) -> (Status, String) {
    let peer = match plan_peer_fail(api, spec, log) {
        Err(why) => return undone(failed(why)),
        Ok(PeerFailPlan::Primary) => return (Status::Ok, no_write_needed(&primary_note(spec))),
        Ok(PeerFailPlan::PeerAbsent) => {
            let absent = peer_absent_note(spec);
            return match own_route(api, spec, log) {
                Ok(hop) => (
                    Status::Ok,
                    no_write_needed(&format!("{absent}; {} already via {hop}", place(spec))),
                ),
                Err(wrong) => (
                    Status::Warning,
                    no_write_needed(&format!("Warning: {absent}; but {wrong}")),
                ),
            };
        }
        Ok(PeerFailPlan::Delete(peer)) => peer,
    };
    let plan = format!(
        "{}, deleting peer route {}",
        would_go(&place(spec), &spec.next_hop.to_string(), &peer.hop()),
        spec.peer
    );
    // The event reads this router's route after the delete; a dry run reads it now, so that a
    // failover that would leave nothing carrying the traffic is known before it is needed.
    let (plan, own_ok) = match own_route(api, spec, log) {
        Ok(_) => (plan, true),
        Err(wrong) => (format!("{plan}; but {wrong}"), false),
    };
    let (status, message) = spec.permission(api, DELETE, log).outcome(&plan);
    let status = if own_ok {
        status
    } else {
        status.max(Status::Warning)
    };
    (status, message)
}

fn dry_run_revert(api: &mut ComputeClient, spec: &Spec, log: &mut EventLog) -> (Status, String) {
    match plan_revert(api, spec, log) {
        Err(why) => undone(failed(why)),
        Ok(RevertPlan::Present) => (
            Status::Ok,
            no_write_needed(&format!(
                "{} already via {} (route {} present)",
                place(spec),
                spec.next_hop,
                spec.own
            )),
        ),
        Ok(RevertPlan::Differs(warning)) => (Status::Warning, warning),
        Ok(RevertPlan::Insert) => {
            let missing = format!("route {} missing", spec.own);
            let plan = format!(
                "{}, re-inserting it at priority {}",
                would_go(&place(spec), &spec.next_hop.to_string(), &missing),
                spec.priority
            );
            spec.permission(api, INSERT, log).outcome(&plan)
        }
    }
}

fn dry_run_verify(api: &mut ComputeClient, spec: &Spec, log: &mut EventLog) -> (Status, String) {
    let stale = match api.get_route(spec.project, PROBE_ROUTE, log, spec.index) {
        Err(e) => return undone(failed(e.to_string())),
        Ok(stale) => stale,
    };
    let cleanup = match stale {
        Some(route) if !is_own_probe(&route, spec) => return undone(failed(foreign_probe(spec))),
        Some(_) => " (after deleting the probe an earlier verify left)",
        None => "",
    };
    let plan = format!(
        "probe route {PROBE_ROUTE} ({}) would be inserted and deleted in vpc {}{cleanup}",
        spec.describe(PROBE_PRIORITY),
        spec.vpc
    );
    spec.permission(api, &ASKED, log).outcome(&plan)
}

/// A [`Done`] that wrote nothing, as a dry run's (status, message).
fn undone((status, message, _): Done) -> (Status, String) {
    (status, message)
}

fn failed(message: String) -> Done {
    (Status::Failed, message, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(value: Value) -> LiveRoute {
        serde_json::from_value(value).expect("route json")
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
