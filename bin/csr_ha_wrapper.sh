#!/bin/sh
# csr-ha wrapper: runs the csr-ha binary named like this file (without .py) with the same
# arguments, so IOS EEM applets (`guestshell run node_event.py -i 10 -e peerFail`), cron jobs
# and scripts written for the original Python package work unchanged, from any directory.
#
# Every wrapper in bin/ is a symlink to this file; the command comes from the name it is called by
# (else from a link on the way to this file). csr_ha_lib.sh (beside this file when installed,
# scripts/ in a checkout) finds the binary: $CSR_HA_BIN, else beside this file, else a checkout's
# target/{release,debug}, else PATH; see csr_ha_find there.
set -u

# This file's real path (links followed), and the names met on the way to it.
self=$0
case $self in */*) ;; *) [ -f "$self" ] && self=./$self || self=$(command -v -- "$self" 2>/dev/null) || self=./$0 ;; esac
names=${0##*/}
n=0
while [ -L "$self" ] && [ "$n" -lt 40 ]; do
  link=$(readlink -- "$self") || break
  case $link in /*) self=$link ;; *) self=${self%/*}/$link ;; esac
  names="$names ${link##*/}"
  n=$((n + 1))
done
csr_ha_self=$self
lib=${self%/*}/csr_ha_lib.sh
[ -f "$lib" ] || lib=${self%/*}/../scripts/csr_ha_lib.sh
[ -f "$lib" ] || lib=$(command -v csr_ha_lib.sh 2>/dev/null) || lib=""
if ! [ -f "$lib" ]; then
  c=${0##*/}
  echo "400: cannot find the csr-ha binary '${c%.py}': csr_ha_lib.sh, which finds it, is neither beside $self nor on PATH; reinstall the package (pip install --user csr_ha-….whl, then csr_ha_setup)" >&2
  exit 127
fi
. "$lib"

# The command: the name we were called by, else the first link on the way named after one.
for c in $names; do
  ! csr_ha_command_of "$c" || break
done
cmd=$csr_ha_command
if [ -z "$cmd" ]; then
  echo "400: csr-ha wrapper called as '$0': not a csr-ha command name" >&2
  exit 2
fi

# A wrapper that finds another wrapper execs it; stop a loop between checkouts.
hops=${CSR_HA_WRAPPER_HOPS:-0}
case $hops in '' | *[!0-9]*) hops=0 ;; esac
if [ "$hops" -ge 4 ]; then
  echo "400: csr-ha wrapper loop while looking for $cmd; set CSR_HA_BIN to the binaries' directory" >&2
  exit 127
fi
CSR_HA_WRAPPER_HOPS=$((hops + 1))
export CSR_HA_WRAPPER_HOPS

if csr_ha_find "$cmd"; then
  exec "$csr_ha_found" "$@"
fi
if [ -n "${CSR_HA_BIN:-}" ]; then
  echo "400: CSR_HA_BIN=$CSR_HA_BIN has no executable $cmd; fix or unset CSR_HA_BIN" >&2
else
  echo "400: cannot find the csr-ha binary '$cmd' (looked in:$csr_ha_looked); install the package (pip install --user csr_ha-….whl, then csr_ha_setup) or run scripts/install.sh in a checkout, build with cargo build --release, or set CSR_HA_BIN" >&2
fi
exit 127
