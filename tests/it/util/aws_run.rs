//! The AWS provider run in-process against moto or the loopback fakes (`aws_moto`,
//! `aws_fakes`), as `ha_event_handler` runs it: validated nodes, a config with static keys or
//! the metadata service, and a fresh VPC per test. Shared by the `aws*` tests.

use super::aws_moto;
use aws_moto::{eni_of, Moto, Vpc};
use csr_ha::cloud::aws::{self, AwsConfig, CredentialSources, Credentials};
use csr_ha::event::EventKind;
use csr_ha::node::{Node, Param, Provider};
use csr_ha::work::{Action, NodeOutcome, Work};
use std::path::Path;
use std::time::Duration;

/// An AWS node in us-east-1: table `rtb`, this router's ENI `eni`, and `route` if given.
pub fn node(index: u16, rtb: &str, eni: &str, route: Option<&str>, mode: &str) -> Node {
    let mut params = vec![
        (Param::RouteTableId, rtb),
        (Param::Region, "us-east-1"),
        (Param::EniId, eni),
        (Param::Mode, mode),
    ];
    params.extend(route.map(|route| (Param::Route, route)));
    super::node(index, Provider::Aws, &params)
}

pub fn keys_config(endpoint: &str, keys: Credentials) -> AwsConfig {
    AwsConfig {
        endpoint: Some(endpoint.to_string()),
        credentials: CredentialSources {
            static_keys: Some(keys),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Runs `work` as a handler would: event log opened, provider run, logs written.
pub fn run_with(work: &Work, config: &AwsConfig) -> Vec<NodeOutcome> {
    let deadline = std::time::Instant::now() + Duration::from_millis(work.deadline_ms);
    let mut log = csr_ha::event_log::EventLog::new(work);
    let outcomes = aws::run_with(work, deadline, &mut log, config);
    log.finish(&outcomes);
    outcomes
}

/// Runs `kind` on `nodes` and returns the outcomes; event files go to `dir`.
pub fn event(
    kind: EventKind,
    config: &AwsConfig,
    dir: &Path,
    nodes: Vec<Node>,
) -> Vec<NodeOutcome> {
    run_with(
        &super::work(Action::Event(kind), Provider::Aws, dir, nodes),
        config,
    )
}

pub fn one(outcomes: Vec<NodeOutcome>) -> NodeOutcome {
    assert_eq!(outcomes.len(), 1, "{outcomes:?}");
    outcomes.into_iter().next().expect("one outcome")
}

pub struct Setup {
    pub moto: &'static Moto,
    pub config: AwsConfig,
    pub vpc: Vpc,
    pub dir: tempfile::TempDir,
}

pub fn setup() -> Setup {
    let moto = aws_moto::shared();
    let vpc = Vpc::create(&moto.client(aws_moto::any_keys()));
    let config = keys_config(&moto.endpoint, aws_moto::any_keys());
    Setup {
        moto,
        config,
        vpc,
        dir: tempfile::tempdir().expect("temp dir"),
    }
}

impl Setup {
    pub fn eni_of(&self, destination: &str) -> Option<String> {
        eni_of(
            &self.moto.client(aws_moto::any_keys()),
            &self.vpc.rtb,
            destination,
        )
    }
    pub fn run(&self, kind: EventKind, nodes: Vec<Node>) -> Vec<NodeOutcome> {
        event(kind, &self.config, self.dir.path(), nodes)
    }
}

/// Node `n`, a primary on [`ENI_A`] in [`RTB`] (the loopback fakes' table), handles `kind`.
pub fn primary_event(kind: EventKind, config: &AwsConfig, dir: &Path, n: u16) -> NodeOutcome {
    let node = node(n, RTB, ENI_A, None, "primary");
    one(event(kind, config, dir, vec![node]))
}

pub const RTB: &str = "rtb-0fa1e0000000001";

pub const ENI_A: &str = "eni-0aaaaaaaaaaaaaaa1";

pub const ENI_B: &str = "eni-0bbbbbbbbbbbbbbb2";

/// `ha` configured for AWS at `endpoint` (moto or the fake EC2) with static keys: no shared
/// credentials or config file, no metadata service.
pub fn aws_env(ha: super::Ha, endpoint: &str) -> super::Ha {
    ha.with_env("CSR_HA_CLOUD", "aws")
        .with_env("AWS_ENDPOINT_URL", endpoint)
        .with_env("AWS_ACCESS_KEY_ID", "AKIAMOTOTESTKEY00001")
        .with_env("AWS_SECRET_ACCESS_KEY", "moto-does-not-check-this")
        .with_env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
        .with_env("AWS_CONFIG_FILE", "/nonexistent/config")
        .with_env("AWS_EC2_METADATA_DISABLED", "true")
}
