//! How the Azure provider meets ARM's throttling, busy tables, long-running writes and errors
//! (against the loopback fake of tests/fakes/src/azure_fake): retried where Azure says to, reported
//! with Azure's own code and message otherwise, and never past the event's deadline.

use crate::util;

use csr_ha::cloud::azure::AzureConfig;
use csr_ha::event::EventKind;
use csr_ha::protocol::Status;
use csr_ha::work::Action;
use util::azure_fake::{Fake, Writes, GROUP};
use util::azure_run::{
    config, fake_with_table, node, only, puts, run, run_with, two_routes_and_internet, OURS, PEER,
};

#[test]
fn throttling_is_retried_after_retry_after() {
    let fake = fake_with_table("rt-429");
    fake.state().throttle = 1;
    let n = node(4, "rt-429", OURS, Some("10.98.0.0/16"));
    let run = run(&fake, EventKind::PeerFail, vec![n]);

    util::assert_outcome(only(&run), Status::Ok);
    let gets: Vec<u16> = fake
        .seen()
        .iter()
        .filter(|s| s.is_table_get())
        .map(|s| s.status)
        .collect();
    assert_eq!(gets, [429, 200]);
    assert_eq!(
        fake.route("rt-429", "to-branch").hop_ip.as_deref(),
        Some(OURS)
    );
}

#[test]
fn a_busy_table_and_server_errors_are_retried() {
    let fake = fake_with_table("rt-busy");
    fake.state().busy = 1;
    fake.state().server_errors = 1;
    let n = node(5, "rt-busy", OURS, Some("10.99.0.0/16"));
    let run = run(&fake, EventKind::PeerFail, vec![n]);

    util::assert_outcome(only(&run), Status::Ok);
    let statuses: Vec<u16> = fake
        .seen()
        .iter()
        .filter(|s| !s.is_imds())
        .map(|s| s.status)
        .collect();
    assert_eq!(statuses, [500, 200, 409, 200]);
    assert_eq!(fake.route("rt-busy", "to-dc").hop_ip.as_deref(), Some(OURS));
}

#[test]
fn an_async_write_is_followed_until_it_succeeds() {
    for writes in [Writes::AzureAsync, Writes::Location] {
        let fake = Fake::start();
        two_routes_and_internet(&fake, "rt-async");
        fake.state().writes = writes;
        let n = node(6, "rt-async", OURS, None);
        let run = run(&fake, EventKind::PeerFail, vec![n]);

        assert_eq!(
            only(&run).outcome,
            Status::Ok,
            "{writes:?}: {:?}",
            run.outcomes
        );
        assert_eq!(
            fake.route("rt-async", "to-dc").hop_ip.as_deref(),
            Some(OURS)
        );
        assert_eq!(
            fake.route("rt-async", "to-branch").hop_ip.as_deref(),
            Some(OURS)
        );
        // The one table write was polled exactly until it completed.
        let polls: Vec<u32> = fake.state().polls().into_values().collect();
        assert_eq!(polls, [2], "{writes:?}");
        assert!(
            fake.seen().iter().all(|s| s.status != 409),
            "{writes:?}: writes overlapped"
        );
    }
}

#[test]
fn a_failed_async_write_reports_the_operation_error() {
    let fake = fake_with_table("rt-fail");
    fake.state().writes = Writes::AzureAsync;
    fake.state().fail_operations = true;
    let n = node(7, "rt-fail", OURS, Some("10.99.0.0/16"));
    let run = run(&fake, EventKind::PeerFail, vec![n]);

    let out = only(&run);
    util::assert_outcome_says(out, Status::Failed, "Azure RouteConflict: Route conflicts");
    assert_eq!(fake.route("rt-fail", "to-dc").hop_ip.as_deref(), Some(PEER));
}

#[test]
fn a_missing_table_is_named_in_the_error_and_a_warning_on_check() {
    let fake = Fake::start();
    let n = node(8, "rt-gone", OURS, None);
    let run = run(&fake, EventKind::PeerFail, vec![n]);
    let out = only(&run);
    util::assert_outcome(out, Status::Failed);
    util::assert_says(out, "rt-gone");
    util::assert_says(out, "not found");
    util::assert_says(out, GROUP);
    assert_eq!(
        fake.seen()
            .iter()
            .filter(|s| s.is_table_get())
            .map(|s| s.status)
            .collect::<Vec<_>>(),
        [404]
    );

    let check = run_with(
        config(&fake),
        20_000,
        Action::Check,
        vec![node(8, "rt-gone", OURS, None)],
    );
    util::assert_outcome_says(
        only(&check),
        Status::Warning,
        "Route Table rt-gone not found",
    );
}

#[test]
fn authorization_failed_is_reported_with_azures_message() {
    let fake = fake_with_table("rt-403");
    fake.state().deny_writes = true;
    let n = node(9, "rt-403", OURS, Some("10.99.0.0/16"));
    let run = run(&fake, EventKind::PeerFail, vec![n]);

    let out = only(&run);
    util::assert_outcome(out, Status::Failed);
    util::assert_starts(out, "Azure AuthorizationFailed: ");
    util::assert_says(out, "does not have authorization to perform action 'Microsoft.Network/routeTables/routes/write'");
    assert_eq!(puts(&fake).len(), 1, "a 403 is not retried");
}

#[test]
fn throttling_past_the_deadline_fails_with_azures_code() {
    let fake = fake_with_table("rt-slow");
    fake.state().throttle = 100;
    let run = run_with(
        config(&fake),
        1_500,
        Action::Event(EventKind::PeerFail),
        vec![node(22, "rt-slow", OURS, None)],
    );
    let out = only(&run);
    util::assert_outcome(out, Status::Failed);
    assert!(
        out.message
            .starts_with("Azure SubscriptionRequestsThrottled: ")
            && out
                .message
                .ends_with("(still throttled when the event's deadline came)"),
        "{}",
        out.message
    );
    let gets = fake.seen().iter().filter(|s| s.is_table_get()).count();
    assert!(
        (1..=2).contains(&gets),
        "Retry-After: 1 honoured within 1.5 s: {gets} reads"
    );
}

#[test]
fn an_unreachable_arm_endpoint_is_named_in_the_error() {
    let fake = Fake::start();
    let port = util::loopback::free_port();
    let config = AzureConfig {
        arm: format!("http://127.0.0.1:{port}"),
        ..config(&fake)
    };
    let run = run_with(
        config,
        800,
        Action::Event(EventKind::PeerFail),
        vec![node(23, "rt-x", OURS, None)],
    );
    let out = only(&run);
    util::assert_outcome_says(
        out,
        Status::Failed,
        "cannot reach Azure Resource Manager (reading Route Table rt-x)",
    );
    assert_eq!(fake.seen().iter().filter(|s| s.is_imds()).count(), 1);
}
