//! csr-ha's integration tests: one binary (as cargo's own `tests/testsuite`), so the helpers in
//! [`util`] are compiled once. The modules mirror `src/`: the core (server, node database,
//! commands, events on the `file` provider), what the clouds share, each cloud, and the router
//! install. Each test drives the real binaries in a fresh temporary directory, as a user would.

mod util;

mod aws;
mod azure;
mod cloud;
mod core;
mod gcp;
mod install;
