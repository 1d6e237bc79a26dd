//! Failover timings of the AWS provider against moto on loopback, with the API calls made.
//!
//! ```text
//! scripts/setup_venv.sh && cargo run --release --example aws_moto_bench [-- ROUNDS]
//! ```
//!
//! 1. `peerFail` on one node (`-r`), alternating between two routers: time from the start of the
//!    handler's work until moto shows the new ENI (confirmed by a separate read), median and p90.
//! 2. `revert` of 200 primary nodes sharing one table (one `-r` route each): one
//!    `DescribeRouteTables`, then 200 `ReplaceRoute`s; then the same `revert` again (no write).

#[path = "../tests/support/aws_moto.rs"]
mod aws_moto;

use std::time::{Duration, Instant};

use csr_ha::cloud::aws::{AwsConfig, CredentialSources, Ec2Table};
use csr_ha::cloud::{apply, Action, NodeOutcome, Outcome, Work};
use csr_ha::event::EventKind;
use csr_ha::event_log::EventLog;
use csr_ha::node::{Node, NodeIndex, Param, Provider};

fn node(index: u16, rtb: &str, eni: &str, route: &str) -> Node {
    let mut node = Node::new(NodeIndex::new(index).expect("index"), Provider::Aws);
    node.params.insert(Param::RouteTableId, rtb.into());
    node.params.insert(Param::Region, "us-east-1".into());
    node.params.insert(Param::EniId, eni.into());
    node.params.insert(Param::Mode, "primary".into());
    node.params.insert(Param::Route, route.into());
    node
}

/// Runs one handler's work as `ha_event_handler` would; returns outcomes and HTTP calls made.
fn handle(
    kind: EventKind,
    dir: &std::path::Path,
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

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(50);
    let moto = aws_moto::Moto::start(&[]);
    let ec2 = moto.client(aws_moto::any_keys());
    let vpc = aws_moto::Vpc::create(&ec2);
    let config = AwsConfig {
        endpoint: Some(moto.endpoint.clone()),
        credentials: CredentialSources {
            static_keys: Some(aws_moto::any_keys()),
            ..Default::default()
        },
    };
    let dir = tempfile::tempdir().expect("temp dir");

    // 1. peerFail on one route, alternating routers.
    let mut times = Vec::new();
    let mut calls = Vec::new();
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
        let shown = aws_moto::eni_of(&ec2, &vpc.rtb, aws_moto::V4_ROUTE);
        let took = started.elapsed();
        assert!(
            outcomes[0].outcome == Outcome::Ok && shown.as_deref() == Some(eni.as_str()),
            "{outcomes:?}"
        );
        times.push(took);
        calls.push(n);
    }
    times.sort();
    let median = times[times.len() / 2];
    let p90 = times[times.len() * 9 / 10];
    println!("| peerFail, 1 node, -r, until moto shows the new ENI ({rounds} rounds) | median {:.1} ms, p90 {:.1} ms | {} calls/event (1 DescribeRouteTables + 1 ReplaceRoute) |",
        ms(median), ms(p90), calls[0]);

    // 2. revert of 200 primary nodes in one table.
    for i in 0..200u16 {
        let dest = format!("172.16.{i}.0/24");
        ec2.call(
            "CreateRoute",
            &[
                ("RouteTableId", &vpc.rtb),
                ("DestinationCidrBlock", &dest),
                ("NetworkInterfaceId", &vpc.eni_b),
            ],
            aws_moto::deadline(),
        )
        .expect("CreateRoute");
    }
    let nodes: Vec<Node> = (0..200u16)
        .map(|i| node(i + 10, &vpc.rtb, &vpc.eni_a, &format!("172.16.{i}.0/24")))
        .collect();
    let started = Instant::now();
    let (outcomes, n) = handle(EventKind::Revert, dir.path(), &config, nodes.clone());
    let took = started.elapsed();
    assert!(
        outcomes.iter().all(|o| o.outcome == Outcome::Ok),
        "{outcomes:?}"
    );
    let moved = aws_moto::routes(&ec2, &vpc.rtb)
        .iter()
        .filter(|r| {
            r.destination.starts_with("172.16.") && r.eni.as_deref() == Some(vpc.eni_a.as_str())
        })
        .count();
    assert_eq!(moved, 200);
    println!("| revert, 200 primary nodes in one table, all moved | {:.1} ms ({:.2} ms/route) | {n} calls (1 DescribeRouteTables + 200 ReplaceRoute) |", ms(took), ms(took) / 200.0);
    let started = Instant::now();
    let (_, n) = handle(EventKind::Revert, dir.path(), &config, nodes);
    println!("| revert again, 200 nodes already in place | {:.1} ms | {n} call (1 DescribeRouteTables) |", ms(started.elapsed()));
}
