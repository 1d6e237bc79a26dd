//! The Azure provider (src/cloud/azure) against the loopback fake of ARM, IMDS and AAD.

mod auth;
mod events;
mod failures;
mod permissions;
mod polling;
mod spec;
