//! The `file` provider replaces a table by a rename in its directory: the dry run asks the
//! directory, not the file's mode, and the write keeps the file's mode.

use crate::util;

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use util::Ha;

fn mode(ha: &Ha, rel: &str) -> u32 {
    std::fs::metadata(ha.path(rel)).expect("stat").mode() & 0o777
}

#[test]
fn a_read_only_table_in_a_writable_directory_is_written_and_keeps_its_mode() {
    let ha = Ha::started();
    ha.table("t1", &[("10.99.0.0/16", "10.0.1.10")]);
    let table = ha.path("route_tables/t1.json");
    std::fs::set_permissions(&table, std::fs::Permissions::from_mode(0o400)).expect("chmod");
    ha.ok_line("create_node -i 1 -t t1 -n 10.0.1.20 -r 10.99.0.0/16 -m primary");
    let out = ha.ok_line("node_event -i 1 -e peerFail --dry-run");
    assert!(out.trim().ends_with("; write permitted"), "{out}");
    ha.ok_line("node_event -i 1 -e peerFail");
    assert_eq!(
        ha.next_hop("t1", "10.99.0.0/16").as_deref(),
        Some("10.0.1.20")
    );
    assert_eq!(mode(&ha, "route_tables/t1.json"), 0o400, "the mode is kept");
    let status = ha.run("ha_api", &["-c", "status"]);
    assert!(status.status.success(), "no failed lastCheck");

    // Root may write any directory; the refusal is only observable as another user.
    if nix::unistd::geteuid().is_root() {
        return;
    }
    let dir = ha.path("route_tables");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o500)).expect("chmod");
    let out = ha.expect_line(1, "node_event -i 1 -e revert --dry-run");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    assert!(
        out.contains("its directory") && out.contains("is not writable by this user"),
        "{out}"
    );
}
