#!/bin/sh
# Installs csr-ha from a checkout: builds the release binaries (`cargo build --release --locked`),
# then runs scripts/csr_ha_setup (the router package's installer, one implementation for both)
# with them. Same options as csr_ha_setup (see --help); --bin-dir DIR skips the build and
# installs the binaries in DIR. A second identical run changes nothing.
# On a router, use the package instead: README "Install on the router".
set -u
repo=$(cd -P -- "$(dirname -- "$0")/.." && pwd -P) || exit 1
setup=$repo/scripts/csr_ha_setup
CSR_HA_SETUP_NAME=install
export CSR_HA_SETUP_NAME
die() {
  echo "400: install: $*" >&2
  exit 1
}

bin_dir=""
dry=0
prev=""
for arg in "$@"; do
  case $prev in --bin-dir) bin_dir=$arg ;; esac
  case $arg in
    --dry-run) dry=1 ;;
    -h | --help) exec sh "$setup" --help ;;
    --uninstall) exec sh "$setup" "$@" ;;
  esac
  prev=$arg
done
# Bad options are refused before anything is built or changed.
sh "$setup" --check "$@" || exit 1

if [ -z "$bin_dir" ]; then
  CARGO=${CSR_HA_CARGO:-cargo}
  command -v "$CARGO" >/dev/null 2>&1 ||
    die "cargo not found: install Rust (https://rustup.rs) or pass --bin-dir with prebuilt binaries"
  echo "building release binaries (cargo build --release --locked) ..."
  if [ $dry = 1 ]; then
    echo "dry-run: would run $CARGO build --release --locked --bins --manifest-path $repo/Cargo.toml"
  else
    "$CARGO" build --release --locked --bins --manifest-path "$repo/Cargo.toml" ||
      die "cargo build failed; see the errors above"
  fi
  set -- --bin-dir "${CARGO_TARGET_DIR:-$repo/target}/release" "$@"
fi
exec sh "$setup" "$@"
