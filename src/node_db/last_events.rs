//! `last_events.json` and `last_checks.json`: each node's last event and last dry run, kept
//! for `show_node` and `ha_api -c status` across restarts.

use std::collections::BTreeMap;
use std::path::Path;

use crate::fs_util::{self, Durability, Perms};
use crate::node::LastEvent;

/// Each node's last event (or last dry run, from `last_checks.json`), as `show_node` shows it;
/// `{}` when the file is missing, unreadable or not a regular file of at most [`MAX_BYTES`] (it
/// is a convenience, the event files are the record).
pub fn load_last_events(path: &Path) -> BTreeMap<u16, LastEvent> {
    fs_util::read_regular(path, MAX_BYTES)
        .ok()
        .and_then(|text| serde_json::from_slice(&text).ok())
        .unwrap_or_default()
}

/// Far above 1023 nodes' records (about 300 bytes each).
const MAX_BYTES: u64 = 8 * 1024 * 1024;

/// Replaces `last_events.json` or `last_checks.json` (temp file and rename; no fsync: losing the
/// newest entry in a power cut costs nothing that the event files do not hold).
pub fn save_last_events(path: &Path, events: &BTreeMap<u16, LastEvent>) {
    let written = serde_json::to_vec_pretty(events)
        .map_err(std::io::Error::other)
        .and_then(|text| fs_util::replace(path, &text, Perms::OwnerOnly, Durability::RenameOnly));
    if let Err(e) = written {
        log::warn!("cannot write {}: {e}", path.display());
    }
}
