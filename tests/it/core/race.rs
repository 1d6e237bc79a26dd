//! Events fired at the same moment on one route never undo each other.
//!
//! The cron job's `verify` reads a route and writes back what it read; the EEM applet's
//! `peerFail` (or the cron job's `revert`) points the route at this router. If both ran side by
//! side, verify could write back the dead peer's hop after peerFail reported success. Each round
//! resets the route to the peer, fires both clients back to back (both orders), and checks: a
//! failover reported done is done.

use crate::util;

use std::process::Child;

use util::Ha;

const A: &str = "10.0.1.10"; // the dead peer's next hop
const B: &str = "10.0.1.20"; // this router's next hop
const ROUTE: &str = "10.99.0.0/16";
const ROUNDS: usize = 200;
/// A big table makes every read and rewrite slow, which widens any window between them.
const TABLE_ROUTES: usize = 5000;

fn big_table(ha: &Ha) {
    let others: Vec<String> = (0..TABLE_ROUTES - 1)
        .map(|k| format!("10.{}.{}.0/24", 100 + k / 256, k % 256))
        .collect();
    let mut routes: Vec<(&str, &str)> = vec![(ROUTE, A)];
    routes.extend(others.iter().map(|d| (d.as_str(), A)));
    ha.table("t1", &routes);
}

/// Puts the route back on the peer without rewriting the other 4999 routes' file by hand.
fn reset_route(ha: &Ha) {
    let path = ha.path("route_tables/t1.json");
    let text = std::fs::read_to_string(&path).expect("read table");
    let mut table: serde_json::Value = serde_json::from_str(&text).expect("table json");
    for r in table["routes"].as_array_mut().expect("routes") {
        if r["destination"] == ROUTE {
            r["next_hop"] = A.into();
        }
    }
    std::fs::write(&path, table.to_string()).expect("write table");
}

fn finished(child: Child) -> (bool, String) {
    let out = child.wait_with_output().expect("wait");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Runs `ROUNDS` rounds of `mover` (peerFail or revert) against `verify`, alternating which
/// client starts first, and returns the rounds where the mover reported success but the route
/// did not end on its hop.
fn race(ha: &Ha, mover: &str) -> Vec<String> {
    let mut lost = Vec::new();
    for round in 0..ROUNDS {
        reset_route(ha);
        let move_args = ["-i", "1", "-e", mover];
        let verify_args = ["-i", "1", "-e", "verify"];
        let (moved, verified) = if round % 2 == 0 {
            let v = ha.spawn("node_event", &verify_args);
            let m = ha.spawn("node_event", &move_args);
            (m, v)
        } else {
            let m = ha.spawn("node_event", &move_args);
            let v = ha.spawn("node_event", &verify_args);
            (m, v)
        };
        let (move_ok, move_out) = finished(moved);
        let (_, verify_out) = finished(verified);
        assert!(move_ok, "round {round}: {mover} failed: {move_out}");
        let hop = ha.next_hop("t1", ROUTE);
        if hop.as_deref() != Some(B) {
            lost.push(format!(
                "round {round}: {mover} said {:?}, verify said {:?}, route via {hop:?}",
                move_out.trim(),
                verify_out.trim()
            ));
        }
    }
    lost
}

fn setup(mode: &str) -> Ha {
    let ha = Ha::started();
    big_table(&ha);
    ha.ok_line(&format!(
        "create_node -i 1 -t t1 -n {B} -r {ROUTE} -m {mode}"
    ));
    ha
}

/// Every round where `mover` reported success ended with the route on its hop.
fn assert_never_undone(mode: &str, mover: &str) {
    let ha = setup(mode);
    let lost = race(&ha, mover);
    assert!(
        lost.is_empty(),
        "{} of {ROUNDS} rounds lost:\n{}",
        lost.len(),
        lost.join("\n")
    );
}

#[test]
fn verify_never_undoes_a_peer_fail() {
    assert_never_undone("secondary", "peerFail");
}

#[test]
fn verify_never_undoes_a_revert() {
    assert_never_undone("primary", "revert");
}
