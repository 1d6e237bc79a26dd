//! The Azure provider run in-process against the fake (`azure_fake`), as `ha_event_handler`
//! runs it: its config pointing at the fake, validated nodes, the event log opened and finished.
//! Shared by the `azure*` tests.

use super::azure_fake::{Fake, FakeRoute, GROUP, RESOURCE, SUB};
use csr_ha::cloud::azure::{self, AzureConfig};
use csr_ha::cloud::token_cache::TokenCache;
use csr_ha::event::EventKind;
use csr_ha::event_log::EventLog;
use csr_ha::node::{Node, Param, Provider};
use csr_ha::work::{Action, NodeOutcome, Work};
use std::time::{Duration, Instant};

pub const OURS: &str = "10.0.1.20";

pub const PEER: &str = "10.0.1.10";

pub fn config(fake: &Fake) -> AzureConfig {
    AzureConfig {
        arm: fake.base.clone(),
        login: fake.base.clone(),
        imds: fake.base.clone(),
        resource: RESOURCE.to_string(),
        poll_interval: Duration::from_millis(20),
        cache: TokenCache::at(fake.cache.path().join("credentials")),
        default_app: None,
    }
}

/// An Azure node on `table` in the fake's subscription and group, next hop `next_hop`, and
/// `route` if given (all routes via the peer otherwise).
pub fn node(index: u16, table: &str, next_hop: &str, route: Option<&str>) -> Node {
    let mut params = vec![
        (Param::Cloud, "azure"),
        (Param::SubscriptionId, SUB),
        (Param::ResourceGroup, GROUP),
        (Param::RouteTableName, table),
        (Param::NextHop, next_hop),
    ];
    params.extend(route.map(|route| (Param::Route, route)));
    super::node(index, Provider::Azure, &params)
}

pub struct Run {
    pub outcomes: Vec<NodeOutcome>,
    pub dir: tempfile::TempDir,
}

pub fn run_with(config: AzureConfig, deadline_ms: u64, action: Action, nodes: Vec<Node>) -> Run {
    let dir = tempfile::tempdir().expect("temp dir");
    let work = Work {
        deadline_ms,
        ..super::work(action, Provider::Azure, dir.path(), nodes)
    };
    let deadline = Instant::now() + Duration::from_millis(work.deadline_ms);
    let mut log = EventLog::new(&work);
    let outcomes = azure::run_with(&work, deadline, &mut log, &config);
    log.finish(&outcomes);
    Run { outcomes, dir }
}

pub fn run(fake: &Fake, kind: EventKind, nodes: Vec<Node>) -> Run {
    run_with(
        config(fake),
        super::builders::DEADLINE_MS,
        Action::Event(kind),
        nodes,
    )
}

pub fn only(run: &Run) -> &NodeOutcome {
    assert_eq!(run.outcomes.len(), 1, "{:?}", run.outcomes);
    &run.outcomes[0]
}

pub fn puts(fake: &Fake) -> Vec<String> {
    fake.seen()
        .iter()
        .filter(|s| s.is_route_put())
        .map(|s| s.path().rsplit('/').next().unwrap_or("").to_string())
        .collect()
}

/// A started fake whose `table` routes two prefixes via the peer and the rest to the Internet.
pub fn fake_with_table(table: &str) -> Fake {
    let fake = Fake::start();
    two_routes_and_internet(&fake, table);
    fake
}

pub fn two_routes_and_internet(fake: &Fake, table: &str) {
    fake.add_table(
        table,
        vec![
            FakeRoute::appliance("to-dc", "10.99.0.0/16", PEER),
            FakeRoute::appliance("to-branch", "10.98.0.0/16", PEER),
            FakeRoute::other("default", "0.0.0.0/0", "Internet"),
        ],
    );
}
