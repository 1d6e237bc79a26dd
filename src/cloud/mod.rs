//! The cloud contract: what every route-table provider is and answers ([`RouteTable`], [`Route`],
//! [`RouteWrite`], [`Permission`], [`CloudError`]).
//!
//! The server hands `ha_event_handler` one [`Work`] per route table: the event
//! and the nodes that share that table. [`run`] gives it to the nodes' provider, which opens its
//! [`RouteTable`] for the [`planner`]: it reads the table once, computes what each node needs,
//! writes only what differs (as the provider writes best: one file rewrite, one Azure table PUT,
//! concurrent EC2 calls) and answers with one outcome per node. A peerFail of nodes with routes
//! on a table whose writes need no read ([`RouteTable::writes_unread`], EC2) is written at once,
//! in one round trip. GCP routes cannot be edited in place, so that provider plans its own work
//! (`gcp::run`) instead of going through [`planner::apply`].
//!
//! What the clouds share lives here once: [`http`] (the client and its retry policy, the error
//! answer as a [`CloudError`]), [`secret`] (the `Secret` type and the masker) and
//! [`token_cache`] (credentials shared by handler processes, one fetch-or-reuse call). Each cloud
//! folder has one shape: `mod.rs` the provider, `client.rs` the client owning its HTTP calls
//! (`Ec2Client`, `ArmClient`, `ComputeClient`), `auth.rs` its credentials (AWS also `sigv4.rs`,
//! its request signing); these are private to their folder, which re-exports what the crate
//! uses.

pub mod aws;
pub mod azure;
pub mod file;
pub mod gcp;
pub mod http;
pub mod planner;
pub mod secret;
pub mod token_cache;

use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::event_log::EventLog;
use crate::node::Provider;
use crate::protocol::Status;
use crate::work::{NodeOutcome, Work};

/// The planner's entry points, where AWS, the file provider, tests and benchmarks have always
/// found them.
pub use planner::{apply, fail_all, run_table};

/// Runs a handler's work to completion and returns one outcome per node. Each provider has the
/// same entry point, `run(work, deadline, log)` (configured from the environment), and the
/// clouds a `run_with(work, deadline, log, &config)` that tests and benchmarks call. It lives
/// here, not in the planner, so that the planner names no provider and no provider import
/// closes a circle through it.
pub fn run(work: &Work) -> Vec<NodeOutcome> {
    let deadline = Instant::now() + Duration::from_millis(work.deadline_ms);
    let mut log = EventLog::new(work);
    let outcomes = match work.provider {
        Provider::File => file::run(work, deadline, &mut log),
        Provider::Aws => aws::run(work, deadline, &mut log),
        Provider::Azure => azure::run(work, deadline, &mut log),
        Provider::Gcp => gcp::run(work, deadline, &mut log),
    };
    log.finish(&outcomes);
    outcomes
}

/// A provider failure, with a message a user can act on. Never carries a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloudError {
    /// The route table itself does not exist (`route table t9 not found`).
    TableNotFound(String),
    /// The cloud's API refused: its error code and message, e.g.
    /// `AWS InvalidRouteTableID.NotFound: The routeTable ID 'rtb-0abc1234' does not exist`.
    Api {
        cloud: &'static str,
        /// The HTTP status of the answer; `None` for an error reported inside a 200 (a failed
        /// long-running operation).
        status: Option<u16>,
        code: String,
        message: String,
    },
    /// Credentials could not be had (metadata service down, bad key file, ...).
    Auth(String),
    /// The API could not be reached or answered garbage.
    Transport(String),
    /// Local trouble: a table file unreadable or malformed, a parameter missing.
    Local(String),
    /// A conditional write ([`RouteWrite::conditional`]) found the route no longer as it was read:
    /// someone else moved it meanwhile, so it was not rewritten. `now` is its next hop now.
    Changed { now: Option<String> },
}

impl fmt::Display for CloudError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloudError::TableNotFound(table) => write!(f, "route table {table} not found"),
            CloudError::Api {
                cloud,
                code,
                message,
                ..
            } => write!(f, "{cloud} {code}: {message}"),
            CloudError::Auth(m) => write!(f, "credentials: {m}"),
            CloudError::Transport(m) | CloudError::Local(m) => f.write_str(m),
            CloudError::Changed { now } => write!(
                f,
                "changed meanwhile (now via {}): not rewritten",
                now.as_deref().unwrap_or("no router")
            ),
        }
    }
}

impl std::error::Error for CloudError {}

impl CloudError {
    /// The same error with every secret masked in its text, in any form a server could have
    /// echoed it in ([`secret::mask`]).
    pub fn masked(self, secrets: &[&str]) -> CloudError {
        let m = |text: String| secret::mask(&text, secrets);
        match self {
            CloudError::TableNotFound(t) => CloudError::TableNotFound(m(t)),
            CloudError::Api {
                cloud,
                status,
                code,
                message,
            } => CloudError::Api {
                cloud,
                status,
                code: m(code),
                message: m(message),
            },
            CloudError::Auth(t) => CloudError::Auth(m(t)),
            CloudError::Transport(t) => CloudError::Transport(m(t)),
            CloudError::Local(t) => CloudError::Local(m(t)),
            CloudError::Changed { now } => CloudError::Changed { now },
        }
    }
}

/// One route as a provider reads it.
///
/// `id` and `pinned` are set by one provider today (Azure) but stay here because the planner,
/// not the provider, decides which routes a node acts on: `pinned` keeps a route out of every
/// plan for a reason the planner puts in the node's message, and `id` is how a planned write finds
/// its way back to the provider's own handle. A provider that needs neither leaves them empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// Canonical CIDR (`10.99.0.0/16`, `2001:db8::/32`).
    pub destination: String,
    /// The router the route points at: an ENI id (AWS) or an IP address (Azure, file).
    /// `None` for routes that point elsewhere (gateways, local).
    pub next_hop: Option<String>,
    /// The provider's handle to write the route back (the Azure route's name); empty if the
    /// destination is enough (AWS, file).
    pub id: String,
    /// Why this route is never written although it may point at a router (an Azure route
    /// without a name, which ARM cannot address); `None` for every route that can be. The
    /// planner reports it (`<prefix> not moved: <why>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned: Option<String>,
}

impl Route {
    /// Only routes that point at a router may be moved; gateways and local routes never are.
    pub fn movable(&self) -> bool {
        self.next_hop.is_some()
    }
}

/// One write an event asks of a table: point `route` at `next_hop`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteWrite {
    /// The route as it was read; its `next_hop` is the value a conditional write expects.
    pub route: Route,
    pub next_hop: String,
    /// Write only if the route still points where it did when read (`verify` restores the value
    /// it read and must never undo a `peerFail` that landed in between). A provider whose API has
    /// a condition uses it; one without says so on its `write_all`.
    pub conditional: bool,
}

/// Whether this router may write a table, proven without writing (a dry run's probe).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Permission {
    /// The cloud says the write would be allowed.
    Permitted,
    /// The cloud says it would be refused, and what is missing, e.g.
    /// `ec2:ReplaceRoute on rtb-0abc1234 (UnauthorizedOperation)`.
    Denied(String),
    /// The cloud could not say (permission API disabled, no right to ask): why. A warning.
    NotProven(String),
}

impl Permission {
    /// A dry run's outcome for a node whose plan (`10.99.0.0/16 in t1 would go via 10.0.1.20
    /// (now 10.0.1.10)`) needs a write, given what the probe found: permitted `Ok`, denied
    /// `Failed`, not proven a `Warning` (the server adds `node 3 peerFail (dry run): `).
    pub fn outcome(&self, plan: &str) -> (Status, String) {
        match self {
            Permission::Permitted => (Status::Ok, format!("{plan}; write permitted")),
            Permission::Denied(what) => (Status::Failed, format!("{plan}; not permitted: {what}")),
            Permission::NotProven(why) => (
                Status::Warning,
                format!("{plan}; write permission not proven: {why}"),
            ),
        }
    }
}

/// A cloud route table: read it whole, then write what an event needs.
pub trait RouteTable {
    /// The table's name for messages (`t1`, `rtb-0a1b2c3d`).
    fn name(&self) -> String;
    /// Every route of the table.
    fn read(&mut self) -> Result<Vec<Route>, CloudError>;
    /// Applies an event's writes, one result each, in order. A conditional write that found its
    /// route changed answers [`CloudError::Changed`].
    fn write_all(&mut self, writes: &[RouteWrite]) -> Vec<Result<(), CloudError>>;
    /// Whether [`Self::write_all`] of `writes` would be permitted, asked without writing (a dry
    /// run). Called at most once per table per dry run, and only when there is a write to make.
    fn probe_write(&mut self, writes: &[RouteWrite]) -> Permission {
        let _ = writes;
        Permission::NotProven("this provider cannot prove write permission".into())
    }
    /// Whether a peerFail of nodes that each name their route (`-r`) may write without reading
    /// the table first: the write is idempotent and its answer is the confirmation (EC2
    /// `ReplaceRoute`), so the failover takes one round trip ([`planner::apply`]). A route that is not
    /// there is the cloud's error. Revert, verify, checks and all-routes nodes always read.
    fn writes_unread(&self) -> bool {
        false
    }
}
