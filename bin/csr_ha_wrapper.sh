#!/bin/sh
# csr-ha wrapper: runs the csr-ha binary named like this file (without .py) with the same
# arguments, so IOS EEM applets (`guestshell run node_event.py -i 10 -e peerFail`), cron jobs
# and scripts written for the original Python package work unchanged, from any directory.
#
# Every wrapper in bin/ is a symlink to this file; the command comes from the name it is called by.
# The binary is looked up, first hit wins:
#   1. $CSR_HA_BIN/<command>              (explicit; an error if it is not there)
#   2. <command> beside this file          (installed layout: <prefix>/bin holds both;
#                                           in a checkout, bin/x.py runs bin/x, this wrapper)
#   3. in a checkout (../Cargo.toml): $CARGO_TARGET_DIR/{release,debug}, ../target/{release,debug}
#   4. <command> on PATH, skipping this file
# Symlinks to this file are followed to find "beside this file".
set -u

invoked=$0

# The command: the name we were called by, else (a symlink named otherwise) the file's own name.
command_of() { # command_of PATH: prints the csr-ha command PATH is named after, if any
  c=${1##*/}
  c=${c%.py}
  case $c in
    ha_api | ha_server | ha_event_handler | create_node | set_params | clear_params | \
    delete_node | show_node | node_event | set_default_aad_app | clear_default_aad_app | \
    show_auth_applications) echo "$c" ;;
  esac
}
cmd=$(command_of "$invoked")

# This file's real location; the command may also come from a link on the way to it.
self=$invoked
case $self in */*) ;; *) self=$(command -v "$self" 2>/dev/null || echo "$self") ;; esac
n=0
while [ -L "$self" ] && [ "$n" -lt 40 ]; do
  link=$(readlink -- "$self") || break
  case $link in
    /*) self=$link ;;
    *) self=${self%/*}/$link ;;
  esac
  [ -n "$cmd" ] || cmd=$(command_of "$self")
  n=$((n + 1))
done
if [ -z "$cmd" ]; then
  echo "400: csr-ha wrapper called as '$invoked': not a csr-ha command name" >&2
  exit 2
fi
case $self in
  */*) here=$(cd -P -- "${self%/*}" 2>/dev/null && pwd -P) || here= ;;
  *) here=$(pwd -P) ;;
esac


# A wrapper that finds another wrapper execs it; stop a loop between checkouts.
hops=${CSR_HA_WRAPPER_HOPS:-0}
case $hops in '' | *[!0-9]*) hops=0 ;; esac
if [ "$hops" -ge 4 ]; then
  echo "400: csr-ha wrapper loop while looking for $cmd; set CSR_HA_BIN to the binaries' directory" >&2
  exit 127
fi
CSR_HA_WRAPPER_HOPS=$((hops + 1))
export CSR_HA_WRAPPER_HOPS

# `-ef` (same file) is not in POSIX test(1) but every sh a router has (bash, dash, busybox) has it.
# shellcheck disable=SC3013
runnable() { # runnable PATH: an executable file that is not this wrapper
  [ -f "$1" ] && [ -x "$1" ] && ! [ "$1" -ef "$self" ]
}

if [ -n "${CSR_HA_BIN:-}" ]; then
  if runnable "$CSR_HA_BIN/$cmd"; then
    exec "$CSR_HA_BIN/$cmd" "$@"
  fi
  echo "400: CSR_HA_BIN=$CSR_HA_BIN has no executable $cmd; fix or unset CSR_HA_BIN" >&2
  exit 127
fi

looked=""

if [ -n "$here" ]; then
  looked="$looked $here"
  if runnable "$here/$cmd"; then exec "$here/$cmd" "$@"; fi
  if [ -f "$here/../Cargo.toml" ]; then
    for profile in release debug; do
      if [ -n "${CARGO_TARGET_DIR:-}" ]; then
        looked="$looked $CARGO_TARGET_DIR/$profile"
        if runnable "$CARGO_TARGET_DIR/$profile/$cmd"; then
          exec "$CARGO_TARGET_DIR/$profile/$cmd" "$@"
        fi
      fi
    done
    for profile in release debug; do
      looked="$looked $here/../target/$profile"
      if runnable "$here/../target/$profile/$cmd"; then
        exec "$here/../target/$profile/$cmd" "$@"
      fi
    done
  fi
fi

old_ifs=$IFS
IFS=:
for dir in ${PATH:-}; do
  IFS=$old_ifs
  [ -n "$dir" ] || dir=.
  if runnable "$dir/$cmd"; then exec "$dir/$cmd" "$@"; fi
done
IFS=$old_ifs

echo "400: cannot find the csr-ha binary '$cmd' (looked in:$looked and PATH); install the package (pip install --user csr_ha-….whl, then csr_ha_setup) or run scripts/install.sh in a checkout, build with cargo build --release, or set CSR_HA_BIN" >&2
exit 127
