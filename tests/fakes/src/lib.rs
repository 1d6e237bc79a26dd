//! The loopback fakes csr_ha's integration tests (`tests/it`) and benchmarks (`examples/`) share:
//! EC2 and IMDS ([`aws_fakes`]), moto ([`aws_moto`]), ARM with IMDS and AAD ([`azure_fake`]),
//! Compute with its metadata server and OAuth ([`gcp_fake`]), all on [`loopback`] servers, and
//! the [`latency_proxy`] that holds each request as a cloud's round trip would. A crate of its own
//! (as cargo's `cargo-test-support`) so that the test binary and the examples compile it once
//! and no example includes test files by path.

use std::path::PathBuf;
use std::sync::OnceLock;

pub mod aws_fakes;
pub mod aws_moto;
pub mod azure_fake;
pub mod gcp_fake;
pub mod latency_proxy;
pub mod loopback;

/// The csr_ha checkout this crate sits in (`tests/fakes/../..`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The variable naming the folder of the clouds' published API descriptions (`azure/`, `gcp/`).
pub const API_DESCRIPTIONS: &str = "CSR_HA_API_DESCRIPTIONS";

/// Where the clouds' published API descriptions are: `CSR_HA_API_DESCRIPTIONS`, else
/// `../shared/reference/api` beside the clone. `None` where neither exists: a clone with nothing
/// beside it still runs every behavioural test, and this says once, loudly, that the fakes then
/// check no request against the descriptions.
pub fn api_descriptions() -> Option<&'static PathBuf> {
    static FOUND: OnceLock<Option<PathBuf>> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            let dir = std::env::var_os(API_DESCRIPTIONS)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| repo_root().join("../shared/reference/api"));
            if dir.is_dir() {
                return Some(dir);
            }
            eprintln!(
                "WARNING: no API descriptions at {} ({API_DESCRIPTIONS} unset or wrong, no \
                 ../shared beside the clone): requests to the Azure and GCP fakes go UNCHECKED \
                 against the clouds' descriptions; the tests of the descriptions are SKIPPED",
                dir.display()
            );
            None
        })
        .as_ref()
}

/// For a test that exists to check requests against the descriptions: `false`, after saying
/// `SKIPPED` with the test's name, where there are none.
pub fn descriptions_or_skip(test: &str) -> bool {
    let found = api_descriptions().is_some();
    if !found {
        eprintln!("SKIPPED {test}: no API descriptions ({API_DESCRIPTIONS})");
    }
    found
}
