#!/bin/sh
# Removes what scripts/install.sh installed: stops the HA server, removes the systemd unit, the
# cron jobs, the PATH lines, the installed commands and the directories install.sh created.
# The node database (node_file), event logs, csr_ha.log and route_tables/ are kept unless
# --purge, which removes the whole HA directory.
# Installed as <prefix>/share/csr_ha/uninstall.sh; it then knows its prefix.
set -u

usage() {
  cat <<'EOF'
usage: uninstall.sh [--prefix DIR] [--ha-dir DIR] [--purge] [--dry-run]
  --prefix DIR   where csr-ha was installed (default: the prefix this copy was installed in,
                 else ~/.local)
  --ha-dir DIR   the HA directory (default: the one recorded at install, else $CSR_HA_DIR,
                 else ~/cloud/HA)
  --purge        also remove the HA directory with node_file, events and logs
  --dry-run      print what would be removed; remove nothing
Commands used, overridable for tests: CSR_HA_SYSTEMCTL, CSR_HA_CRONTAB (as for install.sh).
EOF
}

die() {
  echo "400: uninstall: $*" >&2
  exit 1
}
say() { echo "$*"; }

# The file lists and the mark, shared with install.sh; beside this file in a checkout
# (scripts/) and in an install (<prefix>/share/csr_ha/).
manifest=$(dirname -- "$0")/manifest.sh
[ -f "$manifest" ] || die "$manifest is missing: run the uninstall.sh of a checkout or of an install"
. "$manifest"

prefix=""
ha_dir=""
purge=0
dry=0
while [ $# -gt 0 ]; do
  case $1 in
    --prefix | --ha-dir)
      [ $# -ge 2 ] || die "$1 needs a value; see --help"
      if [ "$1" = --prefix ]; then prefix=$2; else ha_dir=$2; fi
      shift 2
      ;;
    --purge) purge=1; shift ;;
    --dry-run) dry=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument '$1'" ;;
  esac
done
[ -n "${HOME:-}" ] || die "HOME is not set"
SYSTEMCTL=${CSR_HA_SYSTEMCTL:-systemctl}
CRONTAB=${CSR_HA_CRONTAB:-crontab}

absolute() { case $1 in /*) echo "$1" ;; *) echo "$(pwd -P)/$1" ;; esac; }
if [ -z "$prefix" ]; then
  here=$(cd -P -- "$(dirname -- "$0")" && pwd -P)
  case $here in
    */share/csr_ha) prefix=${here%/share/csr_ha} ;;
    *) prefix=$HOME/.local ;;
  esac
fi
prefix=$(absolute "$prefix")
prefix=${prefix%/}
share=$prefix/share/csr_ha
conf=$share/install.conf

scope=user
unit=""
created=""
created_files=""
conf_ha_dir=""
if [ -f "$conf" ]; then
  while IFS= read -r line; do
    case $line in
      HA_DIR=*) conf_ha_dir=${line#HA_DIR=} ;;
      SCOPE=*) scope=${line#SCOPE=} ;;
      UNIT=*) unit=${line#UNIT=} ;;
      CREATED_DIR=*) created="$created${line#CREATED_DIR=}
" ;;
      CREATED_FILE=*) created_files="$created_files${line#CREATED_FILE=}
" ;;
    esac
  done <"$conf"
elif [ ! -x "$prefix/bin/ha_server" ]; then
  die "nothing installed in $prefix (no $conf, no $prefix/bin/ha_server); pass --prefix"
fi
[ -n "$ha_dir" ] || ha_dir=$conf_ha_dir
[ -n "$ha_dir" ] || ha_dir=${CSR_HA_DIR:-$HOME/cloud/HA}
ha_dir=$(absolute "$ha_dir")

run() { # run CMD...: runs a command that changes the system
  if [ $dry = 1 ]; then
    say "dry-run: would run $*"
    return 0
  fi
  "$@"
}
remove() { # remove PATH...: removes files that exist
  for f in "$@"; do
    if [ -e "$f" ] || [ -L "$f" ]; then
      if [ $dry = 1 ]; then say "dry-run: would remove $f"; else rm -f -- "$f" && say "removed $f"; fi
    fi
  done
}
sctl() { if [ "$scope" = user ]; then "$SYSTEMCTL" --user "$@"; else "$SYSTEMCTL" "$@"; fi; }
status=0

# 1. Stop the server: the unit first (or systemd would restart it), then any ha_api-started one.
if [ -n "$unit" ] && [ -f "$unit" ]; then
  if command -v "$SYSTEMCTL" >/dev/null 2>&1; then
    run sctl disable --now csr_ha.service || say "warning: systemctl disable --now csr_ha.service failed"
  fi
  remove "$unit"
  if command -v "$SYSTEMCTL" >/dev/null 2>&1; then run sctl daemon-reload; fi
fi
if [ -x "$prefix/bin/ha_api" ]; then
  if [ $dry = 1 ]; then
    say "dry-run: would run ha_api -c stop"
  else
    CSR_HA_DIR=$ha_dir "$prefix/bin/ha_api" -c stop || status=1
  fi
fi

# 2. Cron jobs: only the marked lines; an emptied table is removed.
if command -v "$CRONTAB" >/dev/null 2>&1; then
  t=$(mktemp "${TMPDIR:-/tmp}/csr_ha_uninstall.XXXXXX") || die "cannot create a temp file"
  trap 'rm -f "$t"' EXIT
  if "$CRONTAB" -l >"$t.old" 2>/dev/null && grep -q -F "$MARK" -- "$t.old"; then
    grep -v -F "$MARK" -- "$t.old" >"$t"
    if [ $dry = 1 ]; then
      say "dry-run: would remove the cron jobs:"
      grep -F "$MARK" -- "$t.old"
    elif [ -s "$t" ]; then
      "$CRONTAB" "$t" && say "removed the cron jobs" || status=1
    else
      "$CRONTAB" -r && say "removed the cron jobs (crontab now empty)" || status=1
    fi
  fi
  rm -f -- "$t.old"
fi

# 3. PATH lines; a profile file install.sh created goes too if nothing else was added to it.
for profile in "$HOME/.profile" "$HOME/.bashrc"; do
  [ -f "$profile" ] && grep -q -F "$MARK PATH" -- "$profile" || continue
  if [ $dry = 1 ]; then
    say "dry-run: would remove the csr_ha PATH line from $profile"
    continue
  fi
  t2=$profile.csr_ha_new
  grep -v -F "$MARK PATH" -- "$profile" >"$t2"
  cat -- "$t2" >"$profile"
  rm -f -- "$t2"
  case $created_files in
    *"$profile
"*) [ -s "$profile" ] || rm -f -- "$profile" ;;
  esac
  say "removed the csr_ha PATH line from $profile"
done

# 4. Installed files.
for b in $BINARIES $WRAPPERS $SCRIPTS; do remove "$prefix/bin/$b"; done
remove "$conf" "$share/uninstall.sh" "$share/manifest.sh"

# 5. The HA directory: the installer's and the server's runtime files, or everything (--purge).
if [ -d "$ha_dir" ]; then
  if [ $purge = 1 ]; then
    if [ $dry = 1 ]; then say "dry-run: would remove $ha_dir and everything in it"; else
      rm -rf -- "$ha_dir" && say "removed $ha_dir"
    fi
  else
    remove "$ha_dir/cloud" "$ha_dir/ha_server.fifo" "$ha_dir/ha_server.pid" "$ha_dir/ha_server.out"
    if [ -d "$ha_dir/replies" ]; then
      if [ $dry = 1 ]; then say "dry-run: would remove $ha_dir/replies"; else rm -rf -- "$ha_dir/replies"; fi
    fi
    say "kept $ha_dir (node_file, events, logs); --purge removes it"
  fi
fi

# 6. Directories install.sh created, deepest first, if now empty.
reversed=""
old_ifs=$IFS
IFS='
'
for d in $created; do reversed="$d
$reversed"; done
for d in $reversed; do
  IFS=$old_ifs
  if [ -d "$d" ]; then
    if [ $dry = 1 ]; then say "dry-run: would remove $d if empty"; else rmdir -- "$d" 2>/dev/null; fi
  fi
done
IFS=$old_ifs

if [ $status = 0 ]; then
  say "200: csr-ha uninstalled from $prefix"
else
  say "400: csr-ha uninstalled from $prefix, with the errors above"
fi
exit $status
