//! `node_event … --dry-run`: the real event's read and plan, a proof of write permission, and
//! nothing written — no route, no node, no `lastEvent`; the line becomes the node's
//! `lastCheck`. And `ha_api -c status`, the one view of the service.

use crate::util;

use csr_ha::event::EventKind;
use csr_ha::node::Provider;
use csr_ha::protocol::Status;
use csr_ha::work::Action;
use util::aws_fakes::FakeEc2;
use util::aws_run::{keys_config, node, one, run_with, ENI_A, ENI_B, RTB};
use util::Ha;

/// Node 1 (primary, 10.0.1.20) and node 2 (secondary, 10.0.1.10) share t1, whose route
/// 10.99.0.0/16 points at node 2's router.
fn pair() -> Ha {
    let ha = Ha::started();
    ha.table("t1", &[("10.99.0.0/16", "10.0.1.10")]);
    ha.ok_line("create_node -i 1 -t t1 -n 10.0.1.20 -r 10.99.0.0/16 -m primary");
    ha.ok_line("create_node -i 2 -t t1 -n 10.0.1.10 -r 10.99.0.0/16 -m secondary");
    ha
}

fn table_text(ha: &Ha, name: &str) -> String {
    std::fs::read_to_string(ha.path(&format!("route_tables/{name}.json"))).expect("table")
}

#[test]
fn a_dry_run_prints_the_plan_and_writes_nothing() {
    let ha = pair();
    let before = table_text(&ha, "t1");
    let node_file = ha.node_file();
    let out = ha.ok_line("node_event -i 1 -e peerFail --dry-run");
    assert_eq!(
        out.trim(),
        "200: node 1 peerFail (dry run): 10.99.0.0/16 in t1 would go via 10.0.1.20 (now 10.0.1.10); write permitted"
    );
    assert_eq!(table_text(&ha, "t1"), before, "a dry run writes no route");
    assert_eq!(ha.node_file(), node_file, "a dry run changes no node");
    assert!(ha.event_files().is_empty(), "{:?}", ha.event_files());

    // A node already via its router needs no write, so no permission either.
    let out = ha.ok_line("node_event -i 2 -e peerFail --dry-run");
    assert_eq!(
        out.trim(),
        "200: node 2 peerFail (dry run): 10.99.0.0/16 already via 10.0.1.10, no write needed"
    );
}

#[test]
fn the_last_dry_run_is_the_nodes_last_check_and_survives_a_restart() {
    let mut ha = pair();
    ha.ok_line("node_event -i 1 -e peerFail");
    let event_line = |text: &str, key: &str| {
        text.lines()
            .find(|l| l.starts_with(key))
            .map(str::to_string)
    };
    let last_event = event_line(&ha.show("1"), "lastEvent").expect("lastEvent line");
    ha.ok_line("node_event -i 1 -e revert --dry-run");
    let shown = ha.show("1");
    assert_eq!(
        event_line(&shown, "lastEvent").as_deref(),
        Some(last_event.as_str()),
        "a dry run leaves lastEvent alone"
    );
    let check = event_line(&shown, "lastCheck").expect("lastCheck line");
    assert!(
        check.starts_with("lastCheck      revert dry run at ")
            && check.ends_with("200: 10.99.0.0/16 already via 10.0.1.20, no write needed"),
        "{check}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ha.ok_line("show_node -i 1 --json")).expect("json");
    let node = &json["nodes"][0];
    assert_eq!(node["lastCheck"]["event"], "revert");
    assert_eq!(node["lastCheck"]["ok"], true);
    assert_eq!(node["lastEvent"]["event"], "peerFail");
    assert!(node["lastEvent"]["text"]
        .as_str()
        .is_some_and(|t| t.starts_with("200: 10.99.0.0/16 in t1 now via 10.0.1.20")));
    assert!(
        node["lastCheck"]["time"]
            .as_str()
            .is_some_and(|t| t.len() == "2026-12-06 01:00:00".len()),
        "{node}"
    );
    ha.kill9();
    ha.start();
    assert_eq!(
        event_line(&ha.show("1"), "lastCheck").as_deref(),
        Some(check.as_str())
    );
}

#[test]
fn dry_runs_of_all_nodes_are_allowed_and_exit_non_zero_if_one_would_fail() {
    let ha = pair();
    ha.table("t2", &[("10.50.0.0/16", "10.0.2.10")]);
    ha.ok_line("create_node -i 3 -t t2 -n 10.0.2.20 -r 10.50.0.0/16 -m primary");
    // A real peerFail of every node is refused; asking what it would do is not.
    ha.expect_line(1, "node_event -i all -e peerFail");
    let out = ha.ok_line("node_event -i all -e peerFail --dry-run");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[2].starts_with("200: node 3 peerFail (dry run): 10.50.0.0/16 in t2 would go via 10.0.2.20 (now 10.0.2.10)"), "{out}");

    // The route is deleted from t2: the dry run says so and exits 1.
    ha.table("t2", &[("10.51.0.0/16", "10.0.2.10")]);
    let out = ha.expect_line(1, "node_event -i 1 -mi 3 -e peerFail --dry-run");
    assert!(
        out.contains(
            "400: node 3 peerFail (dry run): Route 10.50.0.0/16 not found in Route Table t2"
        ),
        "{out}"
    );
    assert!(out.starts_with("200: node 1 peerFail (dry run)"), "{out}");
}

#[test]
fn a_dry_run_does_not_wait_for_an_event_holding_the_table() {
    use nix::fcntl::{Flock, FlockArg};
    let ha = pair();
    // The test holds the table's writer lock: the real peerFail's handler blocks in its read,
    // and the server keeps t1 busy for it.
    let file = std::fs::File::open(ha.path("route_tables/t1.json")).expect("open table");
    let lock = Flock::lock(file, FlockArg::LockExclusive).expect("lock table");
    let slow = ha.spawn("node_event", &["-i", "1", "-e", "peerFail"]);
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let status = ha.ok_line("ha_api -c status --json");
        let json: serde_json::Value = serde_json::from_str(&status).expect("status json");
        let jobs = json["queue"]["jobs"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if jobs.iter().any(|j| {
            j["action"] == "peerFail" && j["state"] == "running" && j["table"] == "file/t1"
        }) {
            break;
        }
        assert!(
            std::time::Instant::now() < until,
            "peerFail never ran: {status}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = ha.ok_line("node_event -i 1 -e peerFail --dry-run");
    assert!(out.starts_with("200: node 1 peerFail (dry run): 10.99.0.0/16 in t1 would go via 10.0.1.20 (now 10.0.1.10)"), "{out}");
    drop(lock);
    let done = slow.wait_with_output().expect("peerFail ends");
    assert!(done.status.success(), "{done:?}");
    assert_eq!(
        ha.next_hop("t1", "10.99.0.0/16").as_deref(),
        Some("10.0.1.20")
    );
}

#[test]
fn status_shows_server_nodes_and_counters_and_fails_with_a_failed_check() {
    let ha = pair();
    ha.ok_line("node_event -i 1 -e peerFail");
    ha.ok_line("node_event -i 1 -e revert --dry-run");
    let out = ha.ok_line("ha_api -c status --json");
    let json: serde_json::Value = serde_json::from_str(&out).expect("status is JSON alone");
    let keys: Vec<&str> = json
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys.len(), 5, "{keys:?}");
    for key in ["server", "queue", "counters", "nodes", "credentials"] {
        assert!(json.get(key).is_some(), "{key} missing: {out}");
    }
    assert_eq!(json["server"]["pid"], ha.server_pid());
    assert_eq!(json["server"]["cloud"], "file");
    assert_eq!(json["server"]["protocolVersion"], csr_ha::protocol::VERSION);
    assert_eq!(json["counters"]["eventsRun"], 1);
    assert_eq!(json["counters"]["eventsFailed"], 0);
    assert_eq!(json["counters"]["dryRuns"], 1);
    assert_eq!(json["queue"]["running"], 0);
    let nodes = json["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 2);
    assert_eq!(nodes[0]["index"], 1);
    assert_eq!(nodes[0]["mode"], "primary");
    assert_eq!(nodes[0]["table"], "file/t1");
    assert_eq!(nodes[0]["route"], "10.99.0.0/16");
    assert_eq!(nodes[0]["lastEvent"]["ok"], true);
    assert!(nodes[0]["lastEvent"]["ageSeconds"].is_u64(), "{out}");
    assert_eq!(nodes[0]["lastCheck"]["event"], "revert");
    assert_eq!(nodes[1]["lastEvent"], serde_json::Value::Null);
    assert_eq!(nodes[1]["lastCheck"], serde_json::Value::Null);

    let text = ha.ok_line("ha_api -c status");
    assert!(text.starts_with("200: HA server is running"), "{text}");
    assert!(
        text.contains("node 1 primary, file/t1, 10.99.0.0/16"),
        "{text}"
    );

    // A check that fails: its route gone from the table.
    ha.table("t1", &[("10.98.0.0/16", "10.0.1.10")]);
    ha.expect_line(1, "node_event -i 2 -e verify --dry-run");
    let out = ha.expect_line(1, "ha_api -c status --json");
    let json: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(json["nodes"][1]["lastCheck"]["ok"], false);
    let text = ha.expect_line(1, "ha_api -c status");
    assert!(
        text.starts_with("400: HA server is running; node(s) 2 failed"),
        "{text}"
    );
}

#[test]
fn status_without_a_server_exits_3() {
    let ha = Ha::new();
    ha.expect_line(3, "ha_api -c status");
    ha.expect_line(3, "ha_api -c status --json");
}

fn aws_dry_run(
    fake: &FakeEc2,
    kind: EventKind,
    nodes: Vec<csr_ha::node::Node>,
) -> Vec<csr_ha::work::NodeOutcome> {
    let dir = tempfile::tempdir().expect("dir");
    let config = keys_config(&fake.endpoint, util::aws_moto::any_keys());
    run_with(
        &util::work(Action::DryRun(kind), Provider::Aws, dir.path(), nodes),
        &config,
    )
}

#[test]
fn aws_proves_permission_with_dry_run_replace_route_and_writes_nothing() {
    let fake = FakeEc2::start(RTB, &[("10.99.0.0/16", ENI_B), ("10.98.0.0/16", ENI_B)]);
    let nodes = vec![
        node(1, RTB, ENI_A, Some("10.99.0.0/16"), "primary"),
        node(2, RTB, ENI_A, Some("10.98.0.0/16"), "primary"),
    ];
    let out = aws_dry_run(&fake, EventKind::PeerFail, nodes);
    for (o, dest) in out.iter().zip(["10.99.0.0/16", "10.98.0.0/16"]) {
        util::assert_outcome(o, Status::Ok);
        assert_eq!(
            o.message,
            format!("{dest} in {RTB} would go via {ENI_A} (now {ENI_B}); write permitted")
        );
    }
    let probes: Vec<_> = fake
        .calls()
        .into_iter()
        .filter(|c| c.action == "ReplaceRoute")
        .collect();
    assert_eq!(probes.len(), 1, "one probe per table: {probes:?}");
    assert_eq!(
        probes[0].params.get("DryRun").map(String::as_str),
        Some("true")
    );
    assert_eq!(fake.writes(), 0);
    assert_eq!(fake.eni_of("10.99.0.0/16").as_deref(), Some(ENI_B));
}

#[test]
fn aws_reports_a_denied_replace_route() {
    let fake = FakeEc2::start(RTB, &[("10.99.0.0/16", ENI_B)]);
    fake.deny_replace_route();
    let out = one(aws_dry_run(
        &fake,
        EventKind::PeerFail,
        vec![node(1, RTB, ENI_A, Some("10.99.0.0/16"), "primary")],
    ));
    util::assert_outcome(&out, Status::Failed);
    assert!(
        out.message.ends_with(&format!(
            "; not permitted: ec2:ReplaceRoute on {RTB} (UnauthorizedOperation)"
        )),
        "{}",
        out.message
    );
    // A node with nothing to write needs no probe.
    let fake = FakeEc2::start(RTB, &[("10.99.0.0/16", ENI_A)]);
    fake.deny_replace_route();
    let out = one(aws_dry_run(
        &fake,
        EventKind::PeerFail,
        vec![node(1, RTB, ENI_A, Some("10.99.0.0/16"), "primary")],
    ));
    util::assert_outcome(&out, Status::Ok);
    assert!(fake.calls().iter().all(|c| c.action != "ReplaceRoute"));
}

#[test]
fn a_dry_run_of_100_nodes_in_3_tables_reads_and_probes_each_table_once() {
    let tables = [
        "rtb-0fa1e0000000001",
        "rtb-0fa1e0000000002",
        "rtb-0fa1e0000000003",
    ];
    let route = |i: u16| format!("10.{}.{}.0/24", i / 200 + 100, i % 200);
    let table_of = |i: u16| tables[usize::from(i) % 3];
    let fake = FakeEc2::start(tables[0], &[]);
    for (t, table) in tables.iter().enumerate() {
        let routes: Vec<(String, &str)> = (1..=100u16)
            .filter(|&i| usize::from(i) % 3 == t)
            .map(|i| (route(i), ENI_B))
            .collect();
        let routes: Vec<(&str, &str)> = routes.iter().map(|(d, e)| (d.as_str(), *e)).collect();
        fake.add_table(table, &routes);
    }
    let mut ha = util::aws_run::aws_env(Ha::new(), &fake.endpoint);
    ha.start();
    for i in 1..=100u16 {
        ha.ok_line(&format!(
            "create_node -i {i} -t {} -rg us-east-1 -n {ENI_A} -r {} -m primary",
            table_of(i),
            route(i)
        ));
    }
    let before = fake.calls().len();
    let out = ha.ok_line("node_event -i all -e revert --dry-run");
    assert_eq!(out.lines().count(), 100, "{out}");
    assert!(
        out.lines()
            .all(|l| l.starts_with("200: node ") && l.ends_with("; write permitted")),
        "{out}"
    );
    let calls = &fake.calls()[before..];
    let count = |action: &str| calls.iter().filter(|c| c.action == action).count();
    assert_eq!(count("DescribeRouteTables"), 3, "one read per table");
    assert_eq!(count("ReplaceRoute"), 3, "one probe per table");
    assert_eq!(fake.writes(), 0);
    for i in [1, 50, 100] {
        assert_eq!(fake.eni_of(&route(i)).as_deref(), Some(ENI_B));
    }
}

#[test]
fn a_node_a_dry_run_skips_for_a_missing_parameter_fails_its_last_check() {
    let ha = pair();
    ha.ok_line("node_event -i 1 -e peerFail --dry-run");
    // The next hop is cleared: a failover of node 1 could not run, and the check must say so
    // in `lastCheck` and in status, not keep the earlier success.
    ha.ok_line("clear_params -i 1 -n");
    let out = ha.expect_line(1, "node_event -i all -e peerFail --dry-run");
    assert!(
        out.contains("400: node 1 peerFail (dry run): skipped: missing -n (nextHop)"),
        "{out}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ha.ok_line("show_node -i 1 --json")).expect("json");
    let check = &json["nodes"][0]["lastCheck"];
    assert_eq!(check["ok"], false, "{check}");
    assert_eq!(check["event"], "peerFail", "{check}");
    assert!(
        check["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("400: skipped: missing -n (nextHop)")),
        "{check}"
    );
    assert_eq!(json["nodes"][0]["lastEvent"], serde_json::Value::Null);
    let text = ha.expect_line(1, "ha_api -c status");
    assert!(
        text.starts_with("400: HA server is running; node(s) 1 failed"),
        "{text}"
    );
}

#[test]
fn help_names_the_dry_run_the_status_command_and_the_last_check() {
    let ha = Ha::new();
    let help = ha.ok("node_event", &["-h"]);
    assert!(
        help.contains("[--dry-run]") && help.contains("  --dry-run "),
        "{help}"
    );
    let help = ha.ok("ha_api", &["-h"]);
    assert!(
        help.contains("start|stop|ping|status [--json]") && help.contains("  --json "),
        "{help}"
    );
    let help = ha.ok("show_node", &["-h"]);
    assert!(help.contains("last dry run"), "{help}");
}
