//! The event manager's queue: one job per route table at a time, peerFail first.
//!
//! The handler is a script that notes when it starts and ends (with the work it was given),
//! can be held until the test releases it, then runs the real `ha_event_handler`. Every
//! assertion is about order, never about how long something took.

use crate::util;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use util::Ha;

const A: &str = "10.0.1.10";
const B: &str = "10.0.1.20";

/// A handler that logs `start <tables> <action>` and `end <tables>` lines to `log`, and waits
/// for the file `release` while its work names the table `held`.
fn spy_handler(ha: Ha, held: &str) -> (Ha, PathBuf, PathBuf) {
    let log = ha.scratch().join("handlers.log");
    let release = ha.scratch().join("release");
    let real = util::bin("ha_event_handler");
    let body = format!(
        r#"w=$(cat)
tables=$(printf '%s' "$w" | grep -o '"RouteTable":"[^"]*"' | cut -d'"' -f4 | sort -u | tr '\n' ' ')
action=$(printf '%s' "$w" | grep -o '"action":[^,]*' | head -1)
echo "start $tables$action" >> {log}
case " $tables" in *" {held} "*)
  n=0; while [ ! -e {release} ] && [ $n -lt 400 ]; do sleep 0.05; n=$((n+1)); done;;
esac
out=$(printf '%s' "$w" | {real})
echo "end $tables" >> {log}
printf '%s' "$out""#,
        log = log.display(),
        release = release.display(),
        real = real.display(),
    );
    (ha.with_handler(&body), log, release)
}

fn lines(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Waits until `log` has a line starting with `prefix`; panics after 20 s.
fn await_line(log: &Path, prefix: &str) {
    let until = Instant::now() + Duration::from_secs(20);
    while Instant::now() < until {
        if lines(log).iter().any(|l| l.starts_with(prefix)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("no '{prefix}' line in {}: {:?}", log.display(), lines(log));
}

/// Waits until the server's log says `needle` (it logs every queued event).
fn await_logged(ha: &Ha, needle: &str) {
    let until = Instant::now() + Duration::from_secs(20);
    while Instant::now() < until {
        let text = std::fs::read_to_string(ha.path("csr_ha.log")).unwrap_or_default();
        if text.contains(needle) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("csr_ha.log never said {needle:?}");
}

fn position(lines: &[String], prefix: &str) -> usize {
    lines
        .iter()
        .position(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no '{prefix}' line: {lines:?}"))
}

#[test]
fn a_busy_table_holds_its_next_job_and_no_other_table() {
    let (mut ha, log, release) = spy_handler(Ha::new(), "t1");
    ha.start();
    ha.table("t1", &[("10.99.0.0/16", A), ("10.98.0.0/16", A)]);
    ha.table("t2", &[("10.97.0.0/16", A)]);
    for (i, table, route) in [
        ("1", "t1", "10.99.0.0/16"),
        ("2", "t1", "10.98.0.0/16"),
        ("3", "t2", "10.97.0.0/16"),
    ] {
        ha.ok("create_node", &["-i", i, "-t", table, "-n", B, "-r", route]);
    }
    std::fs::write(&log, "").expect("reset log");
    let first = ha.spawn("node_event", &["-i", "1", "-e", "peerFail"]);
    await_line(&log, "start t1");
    let second = ha.spawn("node_event", &["-i", "2", "-e", "verify"]);
    await_logged(&ha, "verify for node(s) [2]: queued");
    // t2 is free: its event runs to the end while t1's handler is still held.
    let out = ha.ok("node_event", &["-i", "3", "-e", "peerFail"]);
    assert!(out.contains("now via 10.0.1.20"), "{out}");
    let seen = lines(&log);
    assert_eq!(
        seen.iter().filter(|l| l.starts_with("start t1")).count(),
        1,
        "a second handler started on the busy table t1: {seen:?}"
    );
    std::fs::write(&release, "").expect("release");
    for child in [first, second] {
        let out = child.wait_with_output().expect("wait");
        assert!(out.status.success(), "{:?}", out);
    }
    let seen = lines(&log);
    // The verify on t1 started only after the peerFail on t1 ended.
    let first_end = position(&seen, "end t1");
    let second_start = seen
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with("start t1"))
        .map(|(i, _)| i)
        .nth(1)
        .expect("second t1 start");
    assert!(first_end < second_start, "{seen:?}");
    assert!(position(&seen, "end t2") < first_end, "{seen:?}");
    assert_eq!(ha.next_hop("t1", "10.99.0.0/16").as_deref(), Some(B));
}

#[test]
fn a_queued_peer_fail_starts_before_queued_cron_work() {
    let (ha, log, release) = spy_handler(Ha::new(), "t000");
    let mut ha = ha.with_env("CSR_HA_MAX_HANDLERS", "1");
    ha.start();
    for t in 0..100 {
        let table = format!("t{t:03}");
        ha.table(&table, &[("10.99.0.0/16", A)]);
        let index = t + 1;
        ha.ok_line(&format!("create_node -i {index} -t {table} -n {B}"));
    }
    ha.table("failover", &[("10.99.0.0/16", A)]);
    ha.ok_line(&format!(
        "create_node -i 101 -t failover -n {B} -r 10.99.0.0/16"
    ));
    std::fs::write(&log, "").expect("reset log");
    let verify = ha.spawn("node_event", &["-i", "1", "-mi", "100", "-e", "verify"]);
    await_line(&log, "start t000");
    let failover = ha.spawn("node_event", &["-i", "101", "-e", "peerFail"]);
    await_logged(&ha, "peerFail for node(s) [101]: queued");
    std::fs::write(&release, "").expect("release");
    let out = failover.wait_with_output().expect("wait");
    assert!(out.status.success(), "{out:?}");
    let out = verify.wait_with_output().expect("wait");
    assert!(out.status.success(), "{out:?}");
    let seen: Vec<String> = lines(&log)
        .into_iter()
        .filter(|l| l.starts_with("start"))
        .collect();
    assert_eq!(seen.len(), 101, "{seen:?}");
    assert!(seen[0].starts_with("start t000"), "{seen:?}");
    assert!(
        seen[1].starts_with("start failover") && seen[1].contains("PeerFail"),
        "the peerFail did not start next: {:?}",
        &seen[..3]
    );
}
