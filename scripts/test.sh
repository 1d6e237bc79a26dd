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
cargo test
