#!/bin/sh
# Builds the router packages into dist/, from a clean clone, on any x86_64 Linux with Rust:
#   csr_ha-<version>-py2.py3-none-…manylinux_2_17_x86_64….whl  for `pip install --user` in
#                                                              guestshell (Python 2.7 or 3's pip)
#   csr_ha-<version>-x86_64-linux.tar.gz                       the same files under bin/, for a
#                                                              guestshell without pip
# Both hold the router's binaries (no bench), the original script names (create_node.py, …,
# ha_api.py), revert_nodes.sh / verify_nodes.sh (cron), debug_bundle.sh, csr_ha_setup and
# csr_ha_lib.sh (sourced by the others: the command list, and how the binaries are found).
# The binaries are linked by zig against glibc 2.17 symbols, so they start on guestshell's
# CentOS 7 (glibc 2.17) and CentOS 8 (2.28). maturin, ziglang and wheel come from PyPI into
# .venv-package/ (made on first use). The version is Cargo.toml's.
#
#   scripts/package.sh [-o DIR]      DIR: where the packages go (default dist/)
set -eu
repo=$(cd -P -- "$(dirname -- "$0")/.." && pwd -P)
cd "$repo"
out=dist
while [ $# -gt 0 ]; do
  case $1 in
    -o) [ $# -ge 2 ] || { echo "400: package: -o needs a directory" >&2; exit 1; }; out=$2; shift 2 ;;
    -h | --help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "400: package: unknown argument '$1'; see -h" >&2; exit 1 ;;
  esac
done
case $(uname -m) in x86_64) ;; *) echo "400: package: builds on x86_64 Linux only (this is $(uname -m))" >&2; exit 1 ;; esac
command -v cargo >/dev/null 2>&1 || { echo "400: package: cargo not found; install Rust (https://rustup.rs)" >&2; exit 1; }
start=$(date +%s)

# 1. The build tools, in their own venv (never the moto venv the tests use).
venv=$repo/.venv-package
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" || { echo "400: package: python3 -m venv failed (apt-get install python3-venv)" >&2; exit 1; }
fi
if ! "$venv/bin/python" -c 'import maturin, ziglang, wheel' >/dev/null 2>&1; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check 'maturin>=1.9,<2' ziglang 'wheel>=0.40'
fi
PATH=$venv/bin:$PATH
export PATH

version=$(sed -n 's/^version *= *"\([^"]*\)".*/\1/p' Cargo.toml | head -n 1)
[ -n "$version" ] || { echo "400: package: no version in Cargo.toml" >&2; exit 1; }

# 2. The scripts that go beside the binaries (pyproject.toml's data directory). The wrappers are
#    one file under several names; pip copies, so each name becomes its own file.
data=target/package/data
rm -rf "$data"
mkdir -p "$data/scripts"
eval "$(sh scripts/csr_ha_setup --manifest)"
for w in $WRAPPERS; do cp -L "bin/$w" "$data/scripts/$w"; done
for s in $SCRIPTS; do cp -L "scripts/$s" "$data/scripts/$s"; done
chmod 755 "$data/scripts"/*

# 3. The wheel. maturin builds only the router's [[bin]] targets listed in pyproject.toml.
mkdir -p "$out"
rm -f "$out"/csr_ha-"$version"-*.whl "$out/csr_ha-$version-x86_64-linux.tar.gz"
built=$(mktemp -d "${TMPDIR:-/tmp}/csr_ha_package.XXXXXX")
trap 'rm -rf "$built"' EXIT
maturin build --release --zig --compatibility manylinux2014 --out "$built"
set -- "$built"/csr_ha-"$version"-*.whl
[ -f "$1" ] || { echo "400: package: maturin wrote no wheel" >&2; exit 1; }
# The binaries need no Python, so the wheel says py2.py3: guestshell on IOS XE 16.x has only
# Python 2.7 and its pip 8.1.2, which refuses a py3 wheel (maturin tags a bin wheel py3).
# pip before 19.3 (8.1.2; guestshell 17.x's python3-pip 9.0.3) knows no manylinux2014 tag; every
# pip accepts the plain platform tag, so the wheel carries both.
wheel tags --remove --python-tag py2.py3 --platform-tag "+linux_x86_64" "$1" >/dev/null
set -- "$built"/csr_ha-"$version"-py2.py3-none-*linux_x86_64*.whl
cp "$1" "$out/"
whl=$out/${1##*/}

# 4. The tarball: the wheel's files under bin/.
stage=$built/tar
mkdir -p "$stage/bin"
python3 - "$whl" "$stage/bin" <<'PY'
import sys, zipfile, os
whl, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(whl) as z:
    for info in z.infolist():
        parts = info.filename.split("/")
        if len(parts) == 3 and parts[0].endswith(".data") and parts[1] == "scripts":
            path = os.path.join(dest, parts[2])
            with open(path, "wb") as f:
                f.write(z.read(info))
            os.chmod(path, 0o755)
PY
tarball=$out/csr_ha-$version-x86_64-linux.tar.gz
tar --sort=name --owner=0 --group=0 --numeric-owner -C "$stage" -czf "$tarball" bin

end=$(date +%s)
size() { wc -c <"$1" | awk '{printf "%.1f MB", $1 / 1000000}'; }
echo "200: built in $((end - start)) s:"
echo "  $whl ($(size "$whl"))"
echo "  $tarball ($(size "$tarball"))"
