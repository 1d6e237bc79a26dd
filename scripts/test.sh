#!/usr/bin/env bash
# The whole test suite: installs what the tests need (the Python venv with moto for the AWS
# tests), then formatting, lints, and every unit, integration and property test.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -x scripts/setup_venv.sh ]]; then
    scripts/setup_venv.sh
fi
cargo fmt --check
cargo clippy --all-targets -- -D warnings
# Keep cargo's output, and close with one summary line over every test binary (the last
# binary cargo runs is the doc-tests, whose "0 passed" would otherwise end the log).
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test 2>&1 | tee "$log" || status=$?
passed=$(grep -Eo '^test result: [A-Za-z]+\. [0-9]+ passed' "$log" | awk '{s+=$4} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed;' "$log" | awk '{s+=$1} END {print s+0}')
echo "tests: $passed passed, $failed failed"
exit "$status"
