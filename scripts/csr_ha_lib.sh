# shellcheck shell=sh
# csr_ha_lib.sh: sourced, never run, by the bin/*.py wrappers (bin/csr_ha_wrapper.sh), the cron
# scripts (revert_nodes.sh and its links verify_nodes.sh, check_nodes.sh), debug_bundle.sh and
# csr_ha_setup. It holds the one list of csr-ha commands and the one way to find a csr-ha binary.
# It is installed beside them (<prefix>/bin; the wheel's and the tarball's bin/); in a checkout it
# is scripts/csr_ha_lib.sh.
#
# A user of this file first sets csr_ha_self to its own real path (symlinks followed), then
# sources this file from the directory of that path, else (the bin/ wrapper in a checkout) from
# ../scripts/, else from PATH. A script in scripts/ (always beside this file):
#
#   self=$(readlink -f -- "$0") || self=$0
#   csr_ha_self=$self
#   lib=${self%/*}/csr_ha_lib.sh
#   [ -f "$lib" ] || lib=$(command -v csr_ha_lib.sh 2>/dev/null) || lib=""
#   . "$lib"
#
# (The wrapper follows its links one by one instead: a link's name may be the command.)
#
# Everything here is named csr_ha_* so it cannot clobber the caller's variables.

# The commands. Every binary; the clients also answer to the original Python script names
# (NAME.py, the bin/ wrappers). csr_ha_setup installs all three lists into <prefix>/bin,
# scripts/package.sh ships them (csr_ha_setup --manifest prints them), debug_bundle.sh reports
# each binary's version. pyproject.toml's [tool.maturin] targets name the binaries again (TOML
# cannot read this file); tests/wrappers.rs checks that they agree.
csr_ha_clients="create_node set_params clear_params delete_node show_node node_event ha_api set_default_aad_app clear_default_aad_app show_auth_applications"
csr_ha_binaries="ha_server ha_event_handler $csr_ha_clients"
csr_ha_wrappers=""
for csr_ha_c in $csr_ha_clients; do csr_ha_wrappers="$csr_ha_wrappers${csr_ha_wrappers:+ }$csr_ha_c.py"; done
csr_ha_scripts="revert_nodes.sh verify_nodes.sh check_nodes.sh debug_bundle.sh csr_ha_setup csr_ha_lib.sh"

# The directory of the caller's real file.
case ${csr_ha_self:-} in
  */*) csr_ha_here=$(cd -P -- "${csr_ha_self%/*}" 2>/dev/null && pwd -P) || csr_ha_here="" ;;
  *) csr_ha_here=$(pwd -P) ;;
esac

# csr_ha_command_of PATH: sets csr_ha_command to the csr-ha command PATH is named after
# (bin/node_event.py: node_event); returns 1, csr_ha_command empty, when it names none.
csr_ha_command_of() {
  csr_ha_command=${1##*/}
  csr_ha_command=${csr_ha_command%.py}
  case " $csr_ha_binaries " in *" $csr_ha_command "*) return 0 ;; esac
  csr_ha_command=""
  return 1
}

# `-ef` (same file) is not in POSIX test(1) but every sh a router has (bash, dash, busybox) has it.
# shellcheck disable=SC3013
csr_ha_runnable() { # csr_ha_runnable PATH: an executable file that is not the caller itself
  [ -f "$1" ] && [ -x "$1" ] && ! [ "$1" -ef "${csr_ha_self:-}" ]
}

# csr_ha_find NAME [--package]: sets csr_ha_found to the csr-ha binary NAME; first hit wins:
#   1. $CSR_HA_BIN/NAME                 when CSR_HA_BIN is set, nothing else is tried
#   2. NAME beside the caller           the installed layout: <prefix>/bin holds them all
#   3. in a checkout (../Cargo.toml):   $CARGO_TARGET_DIR/{release,debug}, ../target/{release,debug}
#   4. NAME on PATH
# --package (csr_ha_setup: the binaries that come with it) skips 1 and 4.
# A hit is an executable file other than the caller (a wrapper named NAME runs the binary, not
# itself). Returns 1 when nothing is found; csr_ha_looked then lists the directories tried.
csr_ha_find() {
  csr_ha_found=""
  csr_ha_looked=""
  if [ -n "${CSR_HA_BIN:-}" ] && [ "${2:-}" != --package ]; then
    csr_ha_try "$CSR_HA_BIN" "$1"
    return
  fi
  if [ -n "$csr_ha_here" ]; then
    csr_ha_try "$csr_ha_here" "$1" && return 0
    if [ -f "$csr_ha_here/../Cargo.toml" ]; then
      for csr_ha_t in ${CARGO_TARGET_DIR:+"$CARGO_TARGET_DIR"} "$csr_ha_here/../target"; do
        csr_ha_try "$csr_ha_t/release" "$1" && return 0
        csr_ha_try "$csr_ha_t/debug" "$1" && return 0
      done
    fi
  fi
  [ "${2:-}" != --package ] || return 1
  csr_ha_ifs=$IFS
  IFS=:
  for csr_ha_d in ${PATH:-}; do
    IFS=$csr_ha_ifs
    if csr_ha_runnable "${csr_ha_d:-.}/$1"; then
      csr_ha_found=${csr_ha_d:-.}/$1
      return 0
    fi
  done
  IFS=$csr_ha_ifs
  csr_ha_looked="$csr_ha_looked PATH"
  return 1
}

csr_ha_try() { # csr_ha_try DIR NAME: csr_ha_found=DIR/NAME if runnable, else DIR joins csr_ha_looked
  if csr_ha_runnable "$1/$2"; then
    csr_ha_found=$1/$2
    return 0
  fi
  csr_ha_looked="$csr_ha_looked $1"
  return 1
}

# csr_ha_shipped NAME: sets csr_ha_found to the package's own file NAME (a *.py wrapper, a
# script, this file): beside the caller (the package's bin/), else in a checkout's bin/ or
# scripts/. Returns 1 when there is none.
csr_ha_shipped() {
  for csr_ha_d in "$csr_ha_here" "$csr_ha_here/../bin" "$csr_ha_here/../scripts"; do
    if [ -f "$csr_ha_d/$1" ]; then
      csr_ha_found=$csr_ha_d/$1
      return 0
    fi
  done
  csr_ha_found=$csr_ha_here/$1
  return 1
}
