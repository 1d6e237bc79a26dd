//! GCP VPC routes through the Compute API (not yet implemented).

use std::time::Instant;

use super::{fail_all, CloudError, NodeOutcome, Work};
use crate::event_log::EventLog;

pub fn run(work: &Work, _deadline: Instant, log: &mut EventLog) -> Vec<NodeOutcome> {
    fail_all(
        work,
        &CloudError::Local("the gcp provider is not implemented yet".into()),
        log,
    )
}
