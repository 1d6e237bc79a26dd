//! What a handler's outcome says, asserted with its whole message shown when it does not.

use csr_ha::protocol::Status;
use csr_ha::work::NodeOutcome;

/// `out` is `outcome`.
#[track_caller]
pub fn assert_outcome(out: &NodeOutcome, outcome: Status) {
    assert_eq!(out.outcome, outcome, "{out:?}");
}

/// `out`'s message contains `text`.
#[track_caller]
pub fn assert_says(out: &NodeOutcome, text: &str) {
    assert!(out.message.contains(text), "{}", out.message);
}

/// `out`'s message starts with `text`.
#[track_caller]
pub fn assert_starts(out: &NodeOutcome, text: &str) {
    assert!(out.message.starts_with(text), "{}", out.message);
}

/// `out`'s message ends with `text`.
#[track_caller]
pub fn assert_ends(out: &NodeOutcome, text: &str) {
    assert!(out.message.ends_with(text), "{}", out.message);
}

/// `out` is `outcome` and its message contains `text`.
#[track_caller]
pub fn assert_outcome_says(out: &NodeOutcome, outcome: Status, text: &str) {
    assert_outcome(out, outcome);
    assert_says(out, text);
}
