//! The Azure provider (src/cloud/azure) against the loopback fake of ARM, IMDS and AAD.

mod auth;
mod default_app;
mod events;
mod failures;
mod permissions;
mod polling;
mod spec;
