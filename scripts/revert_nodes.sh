#!/bin/sh
# Cron job, as in the original package: `revert_nodes.sh` sends `node_event -i all -e revert`
# (points the routes of every primary node back at this router if they moved); called as
# `verify_nodes.sh` (a link to this file) it sends `-e verify` (proves every node's credentials can
# still write its route); called as `check_nodes.sh` (another link) it sends `-e peerFail
# --dry-run` (reads every table and proves the write permission, writing nothing). Output is
# discarded when all is well; a failure is appended to $CSR_HA_DIR/csr_ha.log, one line per line
# of output, and the exit code is node_event's.
#
#   revert_nodes.sh [--start]     --start: first start the HA server if it does not answer
#                                 (installs without systemd use this to keep it running)
#
# Binaries: as csr_ha_lib.sh finds them ($CSR_HA_BIN, else beside this file, else a checkout's
# target/, else PATH).
set -u

# The event and the name in log lines come from the name this was called by (verify_nodes.sh and
# check_nodes.sh are links to this file); the real file's location is where the binaries are
# looked for.
name=${0##*/}
case $name in
  *verify*) event="verify" ;;
  *check*) event="peerFail --dry-run" ;;
  *) event="revert" ;;
esac
# This file's real path (links followed); csr_ha_lib.sh beside it finds the binaries.
self=$(readlink -f -- "$0") || self=$0
csr_ha_self=$self
lib=${self%/*}/csr_ha_lib.sh
[ -f "$lib" ] || lib=$(command -v csr_ha_lib.sh 2>/dev/null) || lib=""
[ -f "$lib" ] || { echo "400: $name: csr_ha_lib.sh is neither beside $self nor on PATH; reinstall the package" >&2; exit 127; }
. "$lib"
start=0
for arg in "$@"; do
  case $arg in
    --start) start=1 ;;
    -h | --help)
      sed -n '2,14p' "$self" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "400: $name: unknown argument '$arg'; see -h" >&2
      exit 2
      ;;
  esac
done

ha_dir=${CSR_HA_DIR:-${HOME:-/tmp}/cloud/HA}
run() { # run NAME ARGS...: the csr-ha binary NAME, as csr_ha_lib.sh finds it
  if ! csr_ha_find "$1"; then
    echo "400: cannot find the csr-ha binary '$1' (looked in:$csr_ha_looked)"
    return 127
  fi
  shift
  "$csr_ha_found" "$@"
}

# One log line in the server's format: [time LEVEL process[pid] target] message.
log() {
  [ -d "$ha_dir" ] || return 0
  printf '[%s %-5s %s[%s] cron] %s\n' "$(date -u +%Y-%m-%dT%H:%M:%S.000Z)" "$1" \
    "$name" "$$" "$2" >>"$ha_dir/csr_ha.log"
}
log_output() { # log_output LEVEL PREFIX TEXT: one log line per line of TEXT
  printf '%s\n' "$3" | while IFS= read -r line; do log "$1" "$2: $line"; done
}

if [ $start = 1 ] && ! run ha_api -c ping >/dev/null 2>&1; then
  if out=$(run ha_api -c start 2>&1); then
    log WARN "HA server was not answering; started it: $out"
  else
    log_output ERROR "ha_api -c start failed" "$out"
  fi
fi

# $event is one or two words (peerFail --dry-run): left unquoted to split.
out=$(run node_event -i all -e $event 2>&1)
rc=$?
if [ $rc = 0 ]; then
  exit 0
fi
# No node configured yet is not a failure of the job.
if [ "$out" = "400: No redundancy nodes found" ]; then
  exit 0
fi
log_output ERROR "node_event -i all -e $event exited $rc" "$out"
exit $rc
