//! The `file` provider's writes against other writers of the same table: `verify` never
//! restores a value another writer changed after verify read it.

use crate::util;

use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use csr_ha::cloud::file::FileTable;
use csr_ha::cloud::{self, CloudError, Route, RouteTable, RouteWrite};
use csr_ha::event::EventKind;
use csr_ha::event_log::EventLog;
use csr_ha::node::{Param, Provider};
use csr_ha::protocol::Status;
use csr_ha::work::{Action, Work};

const PEER: &str = "10.0.1.10";
const OTHER: &str = "10.0.1.30";

fn table_text(hop: &str) -> String {
    format!(r#"{{"routes":[{{"destination":"10.99.0.0/16","next_hop":"{hop}"}}]}}"#)
}

fn hop(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("route_tables/t1.json")).expect("table");
    let json: serde_json::Value = serde_json::from_str(&text).expect("json");
    json["routes"][0]["next_hop"]
        .as_str()
        .expect("a hop")
        .to_string()
}

fn verify_work(dir: &Path) -> Work {
    let params = [
        (Param::RouteTable, "t1"),
        (Param::NextHop, PEER),
        (Param::Route, "10.99.0.0/16"),
    ];
    let node = util::node(1, Provider::File, &params);
    Work {
        deadline_ms: 10_000,
        ..util::work(
            Action::Event(EventKind::Verify),
            Provider::File,
            dir,
            vec![node],
        )
    }
}

/// A table that runs `between` after its read and before its writes.
struct Interleaved<F: FnMut()> {
    inner: FileTable,
    between: F,
}

impl<F: FnMut()> RouteTable for Interleaved<F> {
    fn name(&self) -> String {
        self.inner.name()
    }
    fn read(&mut self) -> Result<Vec<Route>, CloudError> {
        let routes = self.inner.read();
        (self.between)();
        routes
    }
    fn write_all(&mut self, writes: &[RouteWrite]) -> Vec<Result<(), CloudError>> {
        self.inner.write_all(writes)
    }
}

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join("route_tables")).expect("mkdir");
    std::fs::write(dir.path().join("route_tables/t1.json"), table_text(PEER)).expect("table");
    dir
}

#[test]
fn verify_does_not_restore_a_route_replaced_by_hand_between_read_and_write() {
    let dir = setup();
    let tables = dir.path().join("route_tables");
    let work = verify_work(dir.path());
    let mut table = Interleaved {
        inner: FileTable::new(&tables, "t1"),
        // Another program replaces the file (no lock) after verify read it.
        between: || {
            let tmp = tables.join("t1.json.tmp");
            std::fs::write(&tmp, table_text(OTHER)).expect("write");
            std::fs::rename(&tmp, tables.join("t1.json")).expect("rename");
        },
    };
    let mut log = EventLog::new(&work);
    let outcomes = cloud::apply(&mut table, &work, &mut log);

    assert_eq!(outcomes.len(), 1);
    assert_eq!(outcomes[0].outcome, Status::Warning, "{outcomes:?}");
    util::assert_starts(
        &outcomes[0],
        "10.99.0.0/16 in t1 changed meanwhile (now via 10.0.1.30): not rewritten",
    );
    assert_eq!(hop(dir.path()), OTHER, "the other writer's value stays");
}

#[test]
fn a_write_waits_for_verify_to_finish_and_is_not_undone() {
    let dir = setup();
    let tables = dir.path().join("route_tables");
    let work = verify_work(dir.path());
    let (done_tx, done_rx) = mpsc::channel();
    let mut writer = None;
    let mut finished_early = false;
    let mut table = Interleaved {
        inner: FileTable::new(&tables, "t1"),
        // A peerFail on another handler: its own read and unconditional write.
        between: || {
            let tables = tables.clone();
            let done = done_tx.clone();
            writer = Some(std::thread::spawn(move || {
                let mut other = FileTable::new(&tables, "t1");
                let routes = other.read().expect("read");
                let results = other.write_all(&[RouteWrite {
                    route: routes[0].clone(),
                    next_hop: OTHER.into(),
                    conditional: false,
                }]);
                assert!(results.iter().all(Result::is_ok), "{results:?}");
                let _ = done.send(());
            }));
            finished_early = done_rx.recv_timeout(Duration::from_millis(300)).is_ok();
        },
    };
    let started = Instant::now();
    let mut log = EventLog::new(&work);
    let outcomes = cloud::apply(&mut table, &work, &mut log);
    drop(table);
    writer
        .take()
        .expect("writer started")
        .join()
        .expect("writer");

    assert!(
        !finished_early,
        "the other write must wait for verify's lock ({:?})",
        started.elapsed()
    );
    assert_eq!(outcomes[0].outcome, Status::Ok, "{outcomes:?}");
    assert_eq!(
        hop(dir.path()),
        OTHER,
        "the later write is the one that stays"
    );
}

/// All-routes mode moves only the routes its next hop's family can carry; a route of the other
/// family held by another router stays, and the node's outcome says so (a 199 line).
#[test]
fn all_routes_mode_leaves_the_other_address_family_and_says_so() {
    let dir = tempfile::tempdir().expect("temp dir");
    let tables = dir.path().join("route_tables");
    std::fs::create_dir_all(&tables).expect("mkdir");
    let text = r#"{"routes":[{"destination":"2001:db8::/64","next_hop":"2001:db8::10"}]}"#;
    std::fs::write(tables.join("t1.json"), text).expect("table");
    let params = [(Param::RouteTable, "t1"), (Param::NextHop, "10.0.1.20")];
    let node = util::node(2, Provider::File, &params);
    let work = util::work(
        Action::Event(EventKind::PeerFail),
        Provider::File,
        dir.path(),
        vec![node],
    );
    let outcomes = cloud::run(&work);

    assert_eq!(outcomes.len(), 1);
    assert_eq!(outcomes[0].outcome, Status::Warning, "{outcomes:?}");
    assert_eq!(
        outcomes[0].message,
        "2001:db8::/64 not moved: next hop 10.0.1.20 is IPv4"
    );
    let after = std::fs::read_to_string(tables.join("t1.json")).expect("table");
    assert!(after.contains("2001:db8::10"), "unchanged: {after}");
}
