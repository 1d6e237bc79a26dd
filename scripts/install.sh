#!/bin/sh
# Installs csr-ha: binaries, the original script names (create_node.py, ...), the HA server as a
# service, and the cron jobs. Run it again to upgrade or change options: it only changes what
# differs, and a second identical run changes nothing. scripts/uninstall.sh undoes it.
set -u

usage() {
  cat <<'EOF'
usage: scripts/install.sh [--cloud aws|azure|gcp|file] [--prefix DIR] [--verify-every MINUTES]
                          [--ha-dir DIR] [--service auto|systemd|ha_api|none] [--scope user|system]
                          [--bin-dir DIR] [--dry-run]
  --cloud C            the cloud this router runs in, written to <ha-dir>/cloud
                       (default: keep the current word, else file)
  --prefix DIR         install under DIR: DIR/bin (commands), DIR/share/csr_ha (default ~/.local)
  --verify-every N     cron job verifying all nodes every N minutes (1-59, or a multiple of 60
                       up to 1440); failures go to <ha-dir>/csr_ha.log; 0 removes it
                       (default: keep the current setting, else none)
  --ha-dir DIR         the HA directory (default $CSR_HA_DIR, else ~/cloud/HA)
  --service S          how the server is kept running: systemd (unit csr_ha.service with
                       Restart=always), ha_api (started now with `ha_api -c start`, restarted by
                       the revert cron job if down), none; auto (default) = systemd when it runs
  --scope S            systemd unit scope: user (~/.config/systemd/user) or system
                       (/etc/systemd/system); default system for root, else user
  --bin-dir DIR        copy prebuilt binaries from DIR instead of `cargo build --release`
  --dry-run            print what would change; change nothing
Commands used, overridable for tests: CSR_HA_CARGO (cargo), CSR_HA_SYSTEMCTL (systemctl),
CSR_HA_CRONTAB (crontab), CSR_HA_LOGINCTL (loginctl), CSR_HA_SYSTEM_UNIT_DIR (/etc/systemd/system).
EOF
}

die() {
  echo "400: install: $*" >&2
  exit 1
}
say() { echo "$*"; }

cloud=""
prefix=""
verify=""
ha_dir=""
service=auto
scope=""
bin_dir=""
dry=0
while [ $# -gt 0 ]; do
  case $1 in
    --cloud | --prefix | --verify-every | --ha-dir | --service | --scope | --bin-dir)
      [ $# -ge 2 ] || die "$1 needs a value; see --help"
      case $1 in
        --cloud) cloud=$2 ;;
        --prefix) prefix=$2 ;;
        --verify-every) verify=$2 ;;
        --ha-dir) ha_dir=$2 ;;
        --service) service=$2 ;;
        --scope) scope=$2 ;;
        --bin-dir) bin_dir=$2 ;;
      esac
      shift 2
      ;;
    --dry-run) dry=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument '$1'" ;;
  esac
done

[ -n "${HOME:-}" ] || die "HOME is not set"
case $cloud in '' | aws | azure | gcp | file) ;; *) die "--cloud '$cloud': expected aws, azure, gcp or file" ;; esac
case $service in auto | systemd | ha_api | none) ;; *) die "--service '$service': expected auto, systemd, ha_api or none" ;; esac
if [ -z "$scope" ]; then
  if [ "$(id -u)" = 0 ]; then scope=system; else scope=user; fi
fi
case $scope in user | system) ;; *) die "--scope '$scope': expected user or system" ;; esac

SYSTEMCTL=${CSR_HA_SYSTEMCTL:-systemctl}
CRONTAB=${CSR_HA_CRONTAB:-crontab}
LOGINCTL=${CSR_HA_LOGINCTL:-loginctl}
CARGO=${CSR_HA_CARGO:-cargo}

repo=$(cd -P -- "$(dirname -- "$0")/.." && pwd -P) || die "cannot find the source tree from $0"
[ -f "$repo/scripts/manifest.sh" ] || die "$repo/scripts/manifest.sh is missing: run install.sh from a csr-ha checkout"
. "$repo/scripts/manifest.sh"

absolute() { # absolute PATH: PATH made absolute against the current directory
  case $1 in /*) echo "$1" ;; *) echo "$(pwd -P)/$1" ;; esac
}
# Paths go into cron lines, a systemd unit and shell profiles: refuse what would need escaping.
plain_path() { # plain_path WHAT PATH
  case $2 in
    *"'"* | *'"'* | *'\'* | *'%'* | *'$'* | *'`'* | *'
'*) die "$1 '$2' contains a quote, backslash, %, \$ or newline; choose a plainer path" ;;
  esac
}
prefix=$(absolute "${prefix:-$HOME/.local}")
prefix=${prefix%/}
ha_dir=$(absolute "${ha_dir:-${CSR_HA_DIR:-$HOME/cloud/HA}}")
ha_dir=${ha_dir%/}
plain_path --prefix "$prefix"
plain_path "HA directory" "$ha_dir"
share=$prefix/share/csr_ha
conf=$share/install.conf

# What a previous install recorded: kept options and the directories it created.
old_verify=""
old_created=""
old_created_files=""
if [ -f "$conf" ]; then
  while IFS= read -r line; do
    case $line in
      VERIFY_EVERY=*) old_verify=${line#VERIFY_EVERY=} ;;
      CREATED_DIR=*) old_created="$old_created${line#CREATED_DIR=}
" ;;
      CREATED_FILE=*) old_created_files="$old_created_files${line#CREATED_FILE=}
" ;;
    esac
  done <"$conf"
fi
[ -n "$verify" ] || verify=$old_verify
[ -n "$verify" ] || verify=0
case $verify in '' | *[!0-9]*) die "--verify-every '$verify': expected a number of minutes" ;; esac
verify=$((verify + 0))
if [ "$verify" -eq 0 ]; then
  verify_when=""
elif [ "$verify" -lt 60 ]; then
  verify_when="*/$verify * * * *"
elif [ "$verify" -eq 1440 ]; then
  verify_when="0 0 * * *"
elif [ $((verify % 60)) -eq 0 ] && [ "$verify" -lt 1440 ]; then
  verify_when="0 */$((verify / 60)) * * *"
else
  die "--verify-every $verify: cron can do 1-59 minutes, or whole hours up to 1440 minutes"
fi
if [ -z "$cloud" ]; then
  cloud=$(cat "$ha_dir/cloud" 2>/dev/null | tr -d ' \t\r\n')
  case $cloud in aws | azure | gcp | file) ;; *) cloud="file" ;; esac
fi

# ---------------------------------------------------------------------------------------------
# Helpers: every change goes through one of these, so --dry-run changes nothing.
changed=0       # something under the prefix changed (binaries, scripts): restart the server
created=""      # directories made by this run
created_files=""  # profile files made by this run
tmp_files=""
cleanup() { [ -z "$tmp_files" ] || rm -f $tmp_files; }
trap cleanup EXIT
trap 'exit 1' HUP INT TERM
temp() { # temp: prints a new temp file name
  t=$(mktemp "${TMPDIR:-/tmp}/csr_ha_install.XXXXXX") || die "cannot create a temp file"
  tmp_files="$tmp_files $t"
  echo "$t"
}

mkdirs() { # mkdirs DIR MODE: creates DIR and its missing parents, remembering which
  missing=""
  p=$1
  while [ ! -d "$p" ]; do
    missing="$p
$missing"
    p=$(dirname -- "$p")
  done
  [ -n "$missing" ] || return 0
  if [ $dry = 1 ]; then
    say "dry-run: would create directory $1"
    return 0
  fi
  old_ifs=$IFS
  IFS='
'
  for d in $missing; do
    IFS=$old_ifs
    mkdir -m "$2" -- "$d" || die "cannot create $d"
    created="$created$d
"
  done
  IFS=$old_ifs
}

put_file() { # put_file SRC DEST MODE: installs SRC as DEST unless identical; atomic rename
  if [ -f "$2" ] && cmp -s -- "$1" "$2"; then
    [ $dry = 1 ] || chmod "$3" -- "$2"
    return 0
  fi
  if [ $dry = 1 ]; then
    say "dry-run: would install $2"
    return 1
  fi
  cp -- "$1" "$2.csr_ha_new" && chmod "$3" -- "$2.csr_ha_new" && mv -f -- "$2.csr_ha_new" "$2" ||
    die "cannot install $2"
  say "installed $2"
  return 1
}

put_text() { # put_text DEST MODE TEXT: writes TEXT (plus a newline) to DEST unless identical
  t=$(temp)
  printf '%s\n' "$3" >"$t"
  put_file "$t" "$1" "$2"
}

run() { # run CMD...: runs a command that changes the system
  if [ $dry = 1 ]; then
    say "dry-run: would run $*"
    return 0
  fi
  "$@"
}

# ---------------------------------------------------------------------------------------------
sctl() { if [ $scope = user ]; then "$SYSTEMCTL" --user "$@"; else "$SYSTEMCTL" "$@"; fi; }
if [ $service = auto ]; then
  service=ha_api
  if command -v "$SYSTEMCTL" >/dev/null 2>&1; then
    case $(sctl is-system-running 2>/dev/null) in
      running | degraded | starting | initializing | maintenance) service=systemd ;;
    esac
  fi
fi
unit=""
if [ $service = systemd ]; then
  if [ $scope = user ]; then
    unit_dir=${XDG_CONFIG_HOME:-$HOME/.config}/systemd/user
    wanted_by=default.target
  else
    unit_dir=${CSR_HA_SYSTEM_UNIT_DIR:-/etc/systemd/system}
    wanted_by=multi-user.target
  fi
  plain_path "unit directory" "$unit_dir"
  unit=$unit_dir/csr_ha.service
fi

# What uninstall.sh needs to know (and the next install keeps); written as soon as the
# directories exist, so an install that fails half-way can still be uninstalled.
write_conf() {
  conf_text="# csr-ha install record, read by uninstall.sh and by the next install.sh
HA_DIR=$ha_dir
SERVICE=$service
SCOPE=$scope
UNIT=$unit
VERIFY_EVERY=$verify"
  old_ifs=$IFS
  IFS='
'
  for d in $old_created$created; do conf_text="$conf_text
CREATED_DIR=$d"; done
  for f in $old_created_files$created_files; do conf_text="$conf_text
CREATED_FILE=$f"; done
  IFS=$old_ifs
  [ $dry = 1 ] || [ -d "$share" ] || return 0
  put_text "$conf" 644 "$conf_text"
}

# 1. Binaries.
if [ -n "$bin_dir" ]; then
  src=$(absolute "$bin_dir")
else
  command -v "$CARGO" >/dev/null 2>&1 ||
    die "cargo not found: install Rust (https://rustup.rs) or pass --bin-dir with prebuilt binaries"
  say "building release binaries (cargo build --release --locked) ..."
  if [ $dry = 1 ]; then
    say "dry-run: would run $CARGO build --release --locked --bins --manifest-path $repo/Cargo.toml"
  else
    "$CARGO" build --release --locked --bins --manifest-path "$repo/Cargo.toml" ||
      die "cargo build failed; see the errors above"
  fi
  src=${CARGO_TARGET_DIR:-$repo/target}/release
fi
for b in $BINARIES; do
  [ -x "$src/$b" ] || [ $dry = 1 ] || die "$src/$b is missing: build it or point --bin-dir at the binaries"
done

mkdirs "$prefix/bin" 755
mkdirs "$share" 755
mkdirs "$ha_dir" 700
[ $dry = 1 ] || write_conf

for b in $BINARIES; do
  if [ -x "$src/$b" ]; then put_file "$src/$b" "$prefix/bin/$b" 755 || changed=1; fi
done
for w in $WRAPPERS; do put_file "$repo/bin/$w" "$prefix/bin/$w" 755 || changed=1; done
for s in $SCRIPTS; do put_file "$repo/scripts/$s" "$prefix/bin/$s" 755 || changed=1; done
put_file "$repo/scripts/uninstall.sh" "$share/uninstall.sh" 755
put_file "$repo/scripts/manifest.sh" "$share/manifest.sh" 644

# 2. The cloud word.
put_text "$ha_dir/cloud" 600 "$cloud"

# 3. PATH, once per profile file: the marked line is replaced, never duplicated.
path_line="case \":\$PATH:\" in *\":$prefix/bin:\"*) ;; *) PATH=\"$prefix/bin:\$PATH\"; export PATH ;; esac $MARK PATH"
for profile in "$HOME/.profile" "$HOME/.bashrc"; do
  t=$(temp)
  if [ -f "$profile" ]; then grep -v -F "$MARK PATH" -- "$profile" >"$t"; fi
  printf '%s\n' "$path_line" >>"$t"
  if [ -f "$profile" ] && cmp -s -- "$t" "$profile"; then continue; fi
  if [ $dry = 1 ]; then
    say "dry-run: would put $prefix/bin on PATH in $profile"
  else
    # Rewrite in place (keeps the file's owner, mode and any symlink).
    [ -e "$profile" ] || created_files="$created_files$profile
"
    cat -- "$t" >"$profile" || die "cannot write $profile"
    say "put $prefix/bin on PATH in $profile (new shells)"
  fi
done

# 4. The service.
ha_api() { CSR_HA_DIR=$ha_dir "$prefix/bin/ha_api" "$@"; }
if [ $service = systemd ]; then
  mkdirs "$unit_dir" 755
  t=$(temp)
  sed -e "s|@PREFIX@|$prefix|g" -e "s|@HA_DIR@|$ha_dir|g" -e "s|@WANTED_BY@|$wanted_by|g" \
    "$repo/scripts/csr_ha.service" >"$t"
  put_file "$t" "$unit" 644 || changed=1
  # A server started earlier by ha_api would hold the lock the unit's server needs.
  if [ $dry = 0 ] && ! sctl is-active --quiet csr_ha.service 2>/dev/null &&
    ha_api -c ping >/dev/null 2>&1; then
    ha_api -c stop
  fi
  if [ $changed = 1 ]; then
    run sctl daemon-reload
    run sctl enable csr_ha.service || die "systemctl enable csr_ha.service failed"
    run sctl restart csr_ha.service || die "systemctl restart csr_ha.service failed; see journalctl -u csr_ha"
  else
    run sctl enable --now csr_ha.service || die "systemctl enable --now csr_ha.service failed"
  fi
  if [ $scope = user ] && command -v "$LOGINCTL" >/dev/null 2>&1; then
    # Without lingering a user unit stops at logout and starts only at login.
    run "$LOGINCTL" enable-linger "$(id -un)" 2>/dev/null ||
      say "note: 'loginctl enable-linger $(id -un)' failed; the service runs only while you are logged in"
  fi
elif [ $service = ha_api ]; then
  if [ $dry = 1 ]; then
    say "dry-run: would run ha_api -c start"
  else
    if [ $changed = 1 ]; then ha_api -c stop >/dev/null 2>&1; fi
    ha_api -c start || die "the HA server did not start; see $ha_dir/ha_server.out and $ha_dir/csr_ha.log"
  fi
fi

# 5. Cron: the marked lines are replaced as a whole; the user's own lines are kept.
start_flag=""
[ $service = ha_api ] && start_flag=" --start"
cron_new=$(temp)
cron_old=$(temp)
warning=""
if ! command -v "$CRONTAB" >/dev/null 2>&1; then
  warning="crontab not found: the revert (every 5 minutes) and verify cron jobs are NOT installed; install cron (e.g. yum install cronie) and run install.sh again"
  say "199: $warning"
fi
[ -n "$warning" ] || "$CRONTAB" -l >"$cron_old" 2>/dev/null || : >"$cron_old"
grep -v -F "$MARK" -- "$cron_old" >"$cron_new"
echo "*/5 * * * * CSR_HA_DIR='$ha_dir' '$prefix/bin/revert_nodes.sh'$start_flag >/dev/null 2>&1 $MARK revert" >>"$cron_new"
if [ -n "$verify_when" ]; then
  echo "$verify_when CSR_HA_DIR='$ha_dir' '$prefix/bin/verify_nodes.sh' >/dev/null 2>&1 $MARK verify" >>"$cron_new"
fi
if [ -z "$warning" ] && ! cmp -s -- "$cron_old" "$cron_new"; then
  if [ $dry = 1 ]; then
    say "dry-run: would install the cron jobs:"
    grep -F "$MARK" -- "$cron_new"
  else
    "$CRONTAB" "$cron_new" || die "crontab refused the new table"
    say "installed cron jobs (crontab -l | grep csr_ha)"
  fi
fi

write_conf

if [ $dry = 1 ]; then
  say "200: dry run done; nothing was changed"
elif [ -n "$warning" ]; then
  say "199: csr-ha installed in $prefix (cloud $cloud, HA directory $ha_dir, server via $service) without cron jobs: $warning"
else
  say "200: csr-ha installed in $prefix (cloud $cloud, HA directory $ha_dir, server via $service)"
fi
