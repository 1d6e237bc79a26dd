//! Events end to end on the `file` provider: node_event → server → ha_event_handler → table file.

use crate::util;

use std::time::Duration;

use util::Ha;

const A: &str = "10.0.1.10"; // router A's next hop
const B: &str = "10.0.1.20"; // router B's next hop

/// A running server with table t1, whose one route 10.99.0.0/16 is via router A.
fn t1_via_a() -> Ha {
    let ha = Ha::started();
    ha.table("t1", &[("10.99.0.0/16", A)]);
    ha
}

/// A running server with node 1 (router B, primary, -r 10.99/16) and node 2 (router B,
/// secondary, all routes) on table t1, whose three routes are via router A.
fn two_nodes() -> Ha {
    let ha = Ha::started();
    ha.table(
        "t1",
        &[("10.99.0.0/16", A), ("10.98.0.0/16", A), ("0.0.0.0/0", A)],
    );
    ha.ok_line(&format!(
        "create_node -i 1 -t t1 -n {B} -r 10.99.0.0/16 -m primary"
    ));
    ha.ok_line(&format!("create_node -i 2 -t t1 -n {B} -m secondary"));
    ha
}

#[test]
fn peer_fail_moves_the_single_route_and_reports_it() {
    let ha = two_nodes();
    let out = ha.ok_starts(
        "node_event -i 1 -e peerFail",
        &format!("200: node 1 peerFail: 10.99.0.0/16 in t1 now via {B} (was {A}), "),
    );
    assert!(out.trim_end().ends_with(" ms"), "{out}");
    assert_eq!(ha.next_hop("t1", "10.99.0.0/16").as_deref(), Some(B));
    assert_eq!(
        ha.next_hop("t1", "10.98.0.0/16").as_deref(),
        Some(A),
        "other routes untouched"
    );
    let again = ha.ok("node_event", &["-i", "1", "-e", "peerFail"]);
    assert_eq!(
        again.trim(),
        format!("200: node 1 peerFail: 10.99.0.0/16 already via {B}, no write")
    );
}

#[test]
fn peer_fail_without_route_moves_every_route_of_the_table() {
    let ha = two_nodes();
    let out = ha.ok_starts("node_event -i 2 -e peerFail", "200: node 2 peerFail: ");
    for dest in ["10.99.0.0/16", "10.98.0.0/16", "0.0.0.0/0"] {
        assert_eq!(ha.next_hop("t1", dest).as_deref(), Some(B), "{dest}: {out}");
        assert!(
            out.contains(&format!("{dest} in t1 now via {B} (was {A})")),
            "{out}"
        );
    }
}

#[test]
fn revert_acts_on_primary_nodes_only() {
    let ha = two_nodes();
    // Secondary: nothing, and no event file left behind.
    ha.ok_starts(
        "node_event -i 2 -e revert",
        "200: node 2 revert: secondary node, nothing to do",
    );
    assert_eq!(ha.next_hop("t1", "10.98.0.0/16").as_deref(), Some(A));
    assert!(
        ha.event_files().iter().all(|f| !f.starts_with("node_2_")),
        "{:?}",
        ha.event_files()
    );
    // Primary single route.
    let out = ha.ok("node_event", &["-i", "1", "-e", "revert"]);
    assert!(
        out.contains(&format!("10.99.0.0/16 in t1 now via {B}")),
        "{out}"
    );
    // A revert that wrote nothing leaves no event file either.
    let before = ha.event_files().len();
    ha.ok("node_event", &["-i", "1", "-e", "revert"]);
    assert_eq!(ha.event_files().len(), before);
    // All nodes: only the primary one acts; with no primary at all the event is aborted.
    let out = ha.ok("node_event", &["-i", "all", "-e", "revert"]);
    assert!(
        out.contains("node 1 revert") && !out.contains("node 2"),
        "{out}"
    );
    ha.ok("set_params", &["-i", "1", "-m", "secondary"]);
    let out = ha.ok("node_event", &["-i", "all", "-e", "revert"]);
    assert_eq!(
        out.trim(),
        "200: No primary nodes configured, revert event aborted"
    );
}

#[test]
fn revert_of_a_primary_all_routes_node_moves_its_next_hops_family() {
    let ha = Ha::started();
    ha.table(
        "t1",
        &[("10.1.0.0/16", A), ("2001:db8::/32", "2001:db8::a")],
    );
    ha.ok_line(&format!("create_node -i 3 -t t1 -n {B} -m primary"));
    let out = ha.ok("node_event", &["-i", "3", "-e", "revert"]);
    assert_eq!(
        ha.next_hop("t1", "10.1.0.0/16").as_deref(),
        Some(B),
        "{out}"
    );
    // An IPv4 next hop cannot carry an IPv6 route: it stays, and the line says why (issue 17).
    assert_eq!(
        ha.next_hop("t1", "2001:db8::/32").as_deref(),
        Some("2001:db8::a"),
        "{out}"
    );
    assert!(
        out.trim().starts_with(&format!(
            "199: node 3 revert: 10.1.0.0/16 in t1 now via {B} (was {A}); 2001:db8::/32 not moved: next hop {B} is IPv4, "
        )),
        "{out}"
    );
}

#[test]
fn verify_reads_and_writes_back_unchanged() {
    let ha = two_nodes();
    let table = ha.path("route_tables/t1.json");
    // Hold the original file open so its inode cannot be freed and handed to a later rewrite:
    // otherwise two atomic renames in a row may legitimately reuse it and the check below flakes.
    let original = std::fs::File::open(&table).expect("table");
    let inode_before = std::os::unix::fs::MetadataExt::ino(&original.metadata().expect("table"));
    for (index, mode_routes) in [("1", 1), ("2", 3)] {
        let out = ha.ok("node_event", &["-i", index, "-e", "verify"]);
        assert_eq!(out.matches("verified via").count(), mode_routes, "{out}");
    }
    let inode_after =
        std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&table).expect("table"));
    assert_ne!(inode_before, inode_after, "verify really wrote the table");
    drop(original);
    for dest in ["10.99.0.0/16", "10.98.0.0/16", "0.0.0.0/0"] {
        assert_eq!(
            ha.next_hop("t1", dest).as_deref(),
            Some(A),
            "verify changed {dest}"
        );
    }
    let out = ha.ok("node_event", &["-i", "all", "-e", "verify"]);
    assert!(
        out.contains("node 1 verify") && out.contains("node 2 verify"),
        "{out}"
    );
}

#[test]
fn failures_are_per_node_and_make_the_exit_code_nonzero() {
    let ha = t1_via_a();
    ha.ok_line(&format!(
        "create_node -i 3 -t t1 -n {B} -r 10.99.0.0/16 -m primary"
    ));
    ha.ok_line(&format!("create_node -i 4 -t t9 -n {B} -m primary"));
    // An incomplete node: create_node requires -n, so it is cleared afterwards.
    ha.ok_line(&format!("create_node -i 5 -t t1 -n {B} -m primary"));
    ha.ok("clear_params", &["-i", "5", "-n"]);
    let out = ha.expect(1, "node_event", &["-i", "3", "-mi", "5", "-e", "revert"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].starts_with("200: node 3 revert: 10.99.0.0/16 in t1 now via"),
        "{out}"
    );
    assert!(
        lines[1].starts_with("400: node 4 revert: route table t9 not found"),
        "{out}"
    );
    assert!(
        lines[2].starts_with("400: node 5 revert: skipped: missing -n (nextHop)"),
        "{out}"
    );
    // A malformed table names its file.
    std::fs::write(ha.path("route_tables/t1.json"), "{not json").expect("write");
    let out = ha.expect(1, "node_event", &["-i", "3", "-e", "peerFail"]);
    assert!(out.contains("t1.json"), "{out}");
}

#[test]
fn live_check_after_create_and_set_warns_but_keeps_the_node() {
    let ha = t1_via_a();
    ha.ok_starts(
        &format!("create_node -i 1 -t t1 -n {B} -r 10.55.0.0/16"),
        "199: Warning: Route 10.55.0.0/16 not found in Route Table t1",
    );
    assert!(ha.show("1").contains("route          10.55.0.0/16"));
    ha.ok_starts(
        "set_params -i 1 -r 10.99.0.0/16",
        "200: Updated node 1 Successfully",
    );
    ha.ok_starts(
        "set_params -i 1 -t nosuch",
        "199: Warning: Route Table nosuch not found",
    );
}

#[test]
fn ranges_and_all_over_100_nodes_in_3_tables() {
    let ha = Ha::started();
    for t in 0..3 {
        let routes: Vec<(String, &str)> =
            (0..34).map(|k| (format!("10.{t}.{k}.0/24"), A)).collect();
        let routes: Vec<(&str, &str)> = routes.iter().map(|(d, n)| (d.as_str(), *n)).collect();
        ha.table(&format!("t{t}"), &routes);
    }
    for i in 1..=100u32 {
        let (t, k) = ((i - 1) % 3, (i - 1) / 3);
        let route = format!("10.{t}.{k}.0/24");
        ha.ok_line(&format!(
            "create_node -i {i} -t t{t} -n {B} -r {route} -m primary"
        ));
    }
    let out = ha.ok("node_event", &["-i", "10", "-mi", "39", "-e", "peerFail"]);
    assert_eq!(out.lines().count(), 30, "{out}");
    assert!(out.lines().all(|l| l.starts_with("200: node ")), "{out}");
    let moved = |ha: &Ha| {
        (1..=100u32)
            .filter(|i| {
                let (t, k) = ((i - 1) % 3, (i - 1) / 3);
                ha.next_hop(&format!("t{t}"), &format!("10.{t}.{k}.0/24"))
                    .as_deref()
                    == Some(B)
            })
            .count()
    };
    assert_eq!(moved(&ha), 30);
    let out = ha.ok("node_event", &["-i", "all", "-e", "revert"]);
    assert_eq!(out.lines().count(), 100, "{out}");
    assert_eq!(moved(&ha), 100);
    let out = ha.ok("node_event", &["-i", "all", "-e", "verify"]);
    assert_eq!(out.matches("verified via").count(), 100, "{out}");
}

#[test]
fn concurrent_events_on_one_table_lose_no_write() {
    let ha = Ha::started();
    let routes: Vec<String> = (0..20).map(|k| format!("10.50.{k}.0/24")).collect();
    let table: Vec<(&str, &str)> = routes.iter().map(|d| (d.as_str(), A)).collect();
    ha.table("shared", &table);
    for (k, route) in routes.iter().enumerate() {
        let index = k + 1;
        ha.ok_line(&format!(
            "create_node -i {index} -t shared -n {B} -r {route}"
        ));
    }
    let children: Vec<_> = (1..=20)
        .map(|i| ha.spawn("node_event", &["-i", &i.to_string(), "-e", "peerFail"]))
        .collect();
    for child in children {
        let out = child.wait_with_output().expect("wait");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    for route in &routes {
        assert_eq!(
            ha.next_hop("shared", route).as_deref(),
            Some(B),
            "{route} lost its write"
        );
    }
}

#[test]
fn a_crashing_handler_is_reported_and_the_server_lives_on() {
    let mut ha = Ha::new().with_handler("kill -9 $$");
    ha.start();
    ha.ok("create_node", &["-i", "1", "-t", "t1", "-n", B]);
    let out = ha.expect(1, "node_event", &["-i", "1", "-e", "peerFail"]);
    assert_eq!(
        out.trim(),
        "400: node 1 peerFail: event handler crashed (signal 9)"
    );
    ha.ok("ha_api", &["-c", "ping"]);
}

#[test]
fn a_hanging_handler_is_killed_at_its_deadline_while_others_are_served() {
    let mut ha = Ha::new()
        .with_handler("exec sleep 30")
        .with_env("CSR_HA_HANDLER_TIMEOUT", "4")
        .with_env("CSR_HA_CHECK_TIMEOUT", "0.5");
    ha.start();
    ha.ok("create_node", &["-i", "1", "-t", "t1", "-n", B]);
    let mut event = ha.spawn("node_event", &["-i", "1", "-e", "peerFail"]);
    std::thread::sleep(Duration::from_millis(300));
    // The server answers others while the handler hangs: both replies come while the event's
    // client is still waiting for its own.
    ha.ok("ha_api", &["-c", "ping"]);
    assert!(ha.show("1").contains("index          1"));
    assert!(
        event.try_wait().expect("try_wait").is_none(),
        "the event finished before ping and show_node were answered"
    );
    let out = event.wait_with_output().expect("wait");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.starts_with("400: node 1 peerFail: event handler killed after its 4 s deadline"),
        "{stdout}"
    );
    assert!(util::zombies_of(ha.server_pid()).is_empty());
}

#[test]
fn event_logs_hold_the_story_and_are_capped_at_512() {
    let ha = two_nodes();
    ha.ok("node_event", &["-i", "1", "-e", "peerFail"]);
    let files = ha.event_files();
    let name = files
        .iter()
        .find(|f| f.starts_with("node_1_") && f.ends_with("_peerFail"))
        .expect("event file");
    // node_<index>_<YYYY-mm-dd_HH:MM:SS>_<event>
    let stamp = &name["node_1_".len()..name.len() - "_peerFail".len()];
    assert_eq!(stamp.len(), 19, "{name}");
    assert_eq!(
        (&stamp[4..5], &stamp[10..11], &stamp[13..14]),
        ("-", "_", ":"),
        "{name}"
    );
    let text = std::fs::read_to_string(ha.path("events").join(name)).expect("read");
    assert!(text.starts_with("Event type is peerFail"), "{text}");
    for needle in [
        "routeTable     t1",
        "Read route table t1: 3 routes",
        &format!("Set route 10.99.0.0/16: {A} -> {B}"),
        "Result: 200",
        "Set route completed successfully",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    // Fill the directory past the cap with older files; the next event trims the oldest.
    let events = ha.path("events");
    for k in 0..520 {
        let f = events.join(format!("node_9_2020-01-01_00:00:{:02}_verify.{k}", k % 60));
        std::fs::write(&f, "old").expect("write");
        let old = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000 + k);
        std::fs::File::options()
            .write(true)
            .open(&f)
            .and_then(|f| f.set_modified(old))
            .expect("mtime");
    }
    ha.ok("node_event", &["-i", "2", "-e", "verify"]);
    let files = ha.event_files();
    assert_eq!(files.len(), 512);
    assert!(
        files.iter().any(|f| f.starts_with("node_2_")),
        "the newest file is kept"
    );
    assert!(
        !files.contains(&"node_9_2020-01-01_00:00:00_verify.0".to_string()),
        "the oldest is removed"
    );
}

#[test]
fn show_node_shows_the_last_event() {
    let ha = two_nodes();
    ha.ok("node_event", &["-i", "1", "-e", "peerFail"]);
    let out = ha.show("1");
    let line = out
        .lines()
        .find(|l| l.starts_with("lastEvent"))
        .expect("lastEvent line");
    assert!(
        line.contains("peerFail at ") && line.contains(" ms: 200: 10.99.0.0/16 in t1 now via"),
        "{line}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ha.ok("show_node", &["-i", "1", "--json"])).expect("json");
    assert_eq!(json["nodes"][0]["lastEvent"]["event"], "peerFail");
    // The record survives a restart of the server.
    let mut ha = ha;
    ha.kill9();
    ha.start();
    let again = ha.show("1");
    assert!(again.contains(line), "{again}");
}

#[test]
fn no_zombies_after_200_events() {
    let ha = t1_via_a();
    ha.ok_line(&format!(
        "create_node -i 1 -t t1 -n {B} -r 10.99.0.0/16 -m primary"
    ));
    ha.ok_line(&format!(
        "create_node -i 2 -t t1 -n {A} -r 10.99.0.0/16 -m primary"
    ));
    for k in 0..200 {
        let index = if k % 2 == 0 { "1" } else { "2" };
        ha.ok("node_event", &["-i", index, "-e", "peerFail"]);
    }
    assert_eq!(ha.next_hop("t1", "10.99.0.0/16").as_deref(), Some(A));
    // A handler that has just answered is reaped on its SIGCHLD a moment later: allow for that
    // on a loaded machine, but a zombie that stays is a leak.
    let until = std::time::Instant::now() + Duration::from_secs(5);
    while !util::zombies_of(ha.server_pid()).is_empty() && std::time::Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(util::zombies_of(ha.server_pid()), Vec::<u32>::new());
    let fds = std::fs::read_dir(format!("/proc/{}/fd", ha.server_pid()))
        .expect("fds")
        .count();
    assert!(fds < 20, "server holds {fds} fds after 200 events: a leak");
}

#[test]
fn handlers_inherit_no_fd_but_their_pipes() {
    let ha = Ha::new();
    let report = ha.scratch().join("fds.txt");
    let mut ha = ha.with_handler(&format!("exec ls /proc/self/fd > {}", report.display()));
    ha.start();
    ha.table("t1", &[("10.99.0.0/16", A)]);
    ha.ok("create_node", &["-i", "1", "-t", "t1", "-n", B]);
    // The spy replaces the handler and reports nothing, so the event fails; only the fds matter.
    ha.expect(1, "node_event", &["-i", "1", "-e", "peerFail"]);
    let fds: Vec<String> = std::fs::read_to_string(&report)
        .expect("report")
        .lines()
        .map(str::to_string)
        .collect();
    // 0, 1, 2, and the directory ls itself opened to list them.
    assert_eq!(fds, ["0", "1", "2", "3"], "handler inherited fds");
}

#[test]
fn a_client_killed_while_waiting_does_not_hurt_the_server() {
    let real = util::bin("ha_event_handler");
    let mut ha = Ha::new().with_handler(&format!("sleep 1\nexec {}", real.display()));
    ha.start();
    ha.table("t1", &[("10.99.0.0/16", A)]);
    ha.ok("create_node", &["-i", "1", "-t", "t1", "-n", B]);
    let mut client = ha.spawn("node_event", &["-i", "1", "-e", "peerFail"]);
    std::thread::sleep(Duration::from_millis(300));
    client.kill().expect("kill client");
    let _ = client.wait();
    // The event still runs to the end, and the server serves the next clients meanwhile.
    let until = std::time::Instant::now() + Duration::from_secs(20);
    let mut out = String::new();
    while std::time::Instant::now() < until {
        out = ha.show("1");
        if out.contains("lastEvent      peerFail") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(out.contains("lastEvent      peerFail"), "{out}");
    assert_eq!(ha.next_hop("t1", "10.99.0.0/16").as_deref(), Some(B));
}

#[test]
fn no_more_handlers_run_at_once_than_configured() {
    let ha = Ha::new();
    let spy_dir = ha.scratch().join("running");
    std::fs::create_dir_all(&spy_dir).expect("mkdir");
    let counts = ha.scratch().join("counts");
    let real = util::bin("ha_event_handler");
    // Each handler registers itself, notes how many are registered, lingers, then does the work.
    let body = format!(
        "touch {d}/$$\nls {d} | wc -l >> {c}\nsleep 0.3\nrm -f {d}/$$\nexec {real}",
        d = spy_dir.display(),
        c = counts.display(),
        real = real.display()
    );
    let mut ha = ha.with_handler(&body).with_env("CSR_HA_MAX_HANDLERS", "2");
    ha.start();
    for t in 1..=6 {
        let table = format!("t{t}");
        ha.table(&table, &[("10.99.0.0/16", A)]);
        ha.ok_line(&format!("create_node -i {t} -t {table} -n {B} -m primary"));
    }
    std::fs::write(&counts, "").expect("reset counts");
    let out = ha.ok("node_event", &["-i", "all", "-e", "revert"]);
    assert_eq!(
        out.lines().filter(|l| l.starts_with("200: ")).count(),
        6,
        "{out}"
    );
    let seen: Vec<u32> = std::fs::read_to_string(&counts)
        .expect("counts")
        .split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect();
    assert_eq!(seen.len(), 6, "one handler per table: {seen:?}");
    assert!(
        seen.iter().all(|&n| n <= 2),
        "more than 2 handlers at once: {seen:?}"
    );
    assert!(seen.contains(&2), "handlers did run in parallel: {seen:?}");
}
