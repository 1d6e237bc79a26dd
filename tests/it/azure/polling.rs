//! A write ARM answers 200/201 with a `provisioningState` that is not terminal and neither
//! `Azure-AsyncOperation` nor `Location`: the provider reads the resource it wrote until the state
//! is `Succeeded`, `Failed` or `Canceled`, or the deadline comes, honouring `Retry-After`; and
//! every ARM call, polls included, says `Accept: application/json` (the fake refuses others).

use crate::util;

use std::time::Duration;

use csr_ha::event::EventKind;
use csr_ha::protocol::Status;
use csr_ha::work::Action;
use util::azure_fake::{Fake, Writes};
use util::azure_run::{config, fake_with_table, node, only, run, run_with, OURS, PEER};

fn state_only(fake: &Fake, polls: u32, end: &'static str, retry_after: Option<u32>) {
    fake.state().writes = Writes::StateOnly {
        polls,
        end,
        retry_after,
    };
}

/// The GETs of `path_end` (a route or the table) after the first write.
fn reads_after_write(fake: &Fake, path_end: &str) -> Vec<util::azure_fake::Seen> {
    let seen = fake.seen();
    let first_put = seen
        .iter()
        .position(|s| s.method == "PUT")
        .expect("a write was sent");
    seen[first_put..]
        .iter()
        .filter(|s| s.method == "GET" && s.path().ends_with(path_end))
        .cloned()
        .collect()
}

#[test]
fn a_route_write_without_a_polling_header_is_read_until_it_succeeded() {
    let fake = fake_with_table("rt-state");
    state_only(&fake, 2, "Succeeded", None);
    let n = node(1, "rt-state", OURS, Some("10.99.0.0/16"));
    let run = run(&fake, EventKind::PeerFail, vec![n]);

    util::assert_outcome_says(
        only(&run),
        Status::Ok,
        "10.99.0.0/16 in rt-state now via 10.0.1.20 (was 10.0.1.10)",
    );
    assert_eq!(reads_after_write(&fake, "/routes/to-dc").len(), 3);
    assert_eq!(
        fake.route("rt-state", "to-dc").hop_ip.as_deref(),
        Some(OURS)
    );
}

#[test]
fn an_all_routes_table_write_is_read_until_it_succeeded() {
    let fake = fake_with_table("rt-state-all");
    state_only(&fake, 1, "Succeeded", None);
    let n = node(2, "rt-state-all", OURS, None);
    let run = run(&fake, EventKind::PeerFail, vec![n]);

    util::assert_outcome(only(&run), Status::Ok);
    assert_eq!(
        reads_after_write(&fake, "/routeTables/rt-state-all").len(),
        2
    );
    assert_eq!(
        fake.route("rt-state-all", "to-branch").hop_ip.as_deref(),
        Some(OURS)
    );
}

#[test]
fn a_write_that_ends_failed_or_canceled_is_a_failure_naming_the_state() {
    for end in ["Failed", "Canceled"] {
        let fake = fake_with_table("rt-state-bad");
        state_only(&fake, 1, end, None);
        let n = node(3, "rt-state-bad", OURS, Some("10.99.0.0/16"));
        let run = run(&fake, EventKind::PeerFail, vec![n]);

        util::assert_outcome_says(
            only(&run),
            Status::Failed,
            &format!(
                "Azure ProvisioningState{end}: writing route to-dc (10.99.0.0/16) in Route Table \
                 rt-state-bad ended with provisioningState {end}"
            ),
        );
        assert_eq!(
            fake.route("rt-state-bad", "to-dc").hop_ip.as_deref(),
            Some(PEER)
        );
    }
}

#[test]
fn a_write_still_updating_at_the_deadline_says_so() {
    let fake = fake_with_table("rt-state-slow");
    state_only(&fake, u32::MAX, "Succeeded", None);
    let n = node(4, "rt-state-slow", OURS, Some("10.99.0.0/16"));
    let run = run_with(
        config(&fake),
        1_500,
        Action::Event(EventKind::PeerFail),
        vec![n],
    );

    let out = only(&run);
    util::assert_outcome_says(out, Status::Failed, "still Updating after 1 s");
    assert!(
        out.message.ends_with("still Updating after 1 s"),
        "{}",
        out.message
    );
    util::assert_outcome_says(out, Status::Failed, "look at Route Table rt-state-slow");
    assert!(reads_after_write(&fake, "/routes/to-dc").len() > 3);
}

#[test]
fn retry_after_spaces_the_reads_of_the_resource() {
    let fake = fake_with_table("rt-state-wait");
    state_only(&fake, 1, "Succeeded", Some(1));
    let n = node(5, "rt-state-wait", OURS, Some("10.99.0.0/16"));
    // config() polls every 20 ms unless ARM says otherwise.
    let run = run(&fake, EventKind::PeerFail, vec![n]);

    util::assert_outcome(only(&run), Status::Ok);
    let reads = reads_after_write(&fake, "/routes/to-dc");
    assert_eq!(reads.len(), 2);
    let gap = reads[1].at.duration_since(reads[0].at);
    assert!(
        gap >= Duration::from_millis(950),
        "the second read came {gap:?} after the first, not after Retry-After: 1"
    );
}

#[test]
fn every_arm_call_polls_included_accepts_exactly_application_json() {
    for writes in [
        Writes::AzureAsync,
        Writes::Location,
        Writes::StateOnly {
            polls: 1,
            end: "Succeeded",
            retry_after: None,
        },
    ] {
        let fake = fake_with_table("rt-accept");
        fake.state().writes = writes;
        let n = node(6, "rt-accept", OURS, Some("10.99.0.0/16"));
        let run = run(&fake, EventKind::PeerFail, vec![n]);

        util::assert_outcome(only(&run), Status::Ok);
        let arm: Vec<_> = fake
            .seen()
            .into_iter()
            .filter(|s| !s.is_imds() && !s.is_login())
            .collect();
        assert!(arm.len() >= 4, "{writes:?}: read, write and two polls");
        for call in arm {
            let accepts: Vec<_> = call
                .headers
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case("accept"))
                .map(|(_, v)| v.as_str())
                .collect();
            assert_eq!(
                accepts,
                ["application/json"],
                "{} {}",
                call.method,
                call.url
            );
        }
    }
}
