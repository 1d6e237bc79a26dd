#!/usr/bin/env bash
# The whole test suite: installs what the tests need (the Python venv with moto for the AWS
# tests), then formatting, lints, every unit, integration and property test (every test binary
# runs, whatever fails first), and the router packages end to end (scripts/test_package.sh;
# CSR_HA_SKIP_PACKAGE=1 skips them). Closes with one summary line over all of it.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -x scripts/setup_venv.sh ]]; then
    scripts/setup_venv.sh
fi
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings

# The Azure and GCP fakes check every request against the clouds' published descriptions
# (CSR_HA_API_DESCRIPTIONS, else ../shared/reference/api beside the clone). Without them every
# behavioural test still runs; the tests that exist to check the descriptions are skipped.
descriptions=${CSR_HA_API_DESCRIPTIONS:-../shared/reference/api}
if [[ ! -d $descriptions ]]; then
    echo "SKIPPED: no API descriptions at $descriptions (set CSR_HA_API_DESCRIPTIONS): requests go" \
        "unchecked against them, and these tests pass without checking:" \
        $(grep -rhzo 'descriptions_or_skip(\s*"[^"]*"' tests/it | tr '\0' '\n' | grep -o '"[^"]*"' | tr -d '"')
fi

# Keep cargo's output, and close with one summary line over every test binary (the last
# binary cargo runs is the doc-tests, whose "0 passed" would otherwise end the log).
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
# Most tests wait on real processes, FIFOs and loopback servers rather than on the CPU, so four
# run at once on two cores (RUST_TEST_THREADS overrides; BENCHMARKS.md "Test suite").
export RUST_TEST_THREADS=${RUST_TEST_THREADS:-4}
cargo test --workspace --no-fail-fast 2>&1 | tee "$log" || status=$?
passed=$(grep -Eo '^test result: [A-Za-z]+\. [0-9]+ passed' "$log" | awk '{s+=$4} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed;' "$log" | awk '{s+=$1} END {print s+0}')
# The router packages: built, checked for glibc 2.17, installed and run (CSR_HA_SKIP_PACKAGE=1
# skips this, and says so).
package=ok
scripts/test_package.sh 2>&1 | tee "$log" || { package=FAILED; status=1; }
if grep -q '^test_package: SKIPPED' "$log"; then package=SKIPPED; fi
echo "tests: $passed passed, $failed failed; router packages: $package"
exit "$status"
