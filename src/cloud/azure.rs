//! Azure route tables through ARM (not yet implemented).

use std::time::Instant;

use super::{CloudError, RouteTable, Work};

pub fn open(_work: &Work, _deadline: Instant) -> Result<Box<dyn RouteTable>, CloudError> {
    Err(CloudError::Local(
        "the azure provider is not implemented yet".into(),
    ))
}
