#!/bin/sh
# Collects what support needs into one tarball, secrets redacted:
#   node_file (+ node_file.orig), events/, csr_ha.log*, ha_server.out, route_tables/, the cloud
#   word, versions (binaries, OS), the service's status, the csr-ha cron entries, and what the
#   original's debug_ha.sh collected: the archived logs (archive/: CSR_HA_LOG_ARCHIVE_DIR, else
#   /bootflash/guest-share/csr_ha and /bootflash/csr_ha), the csr_ha unit's journal (journal.txt:
#   user and system unit), the tail of /var/log/messages (messages.txt), pip freeze
#   (pip_freeze.txt: pip, pip3, pip2), the OS release (os-release.txt: /etc/os-release,
#   /etc/redhat-release). A piece that is missing or unreadable is noted, never fatal; the
#   journal and messages are read through password-less sudo where plain reading fails.
# Redacted: Azure app keys (appKey= in node_file, and the same values anywhere else), anything
# named *key/*secret/*token/*password/signature, Authorization headers, bearer tokens, JWTs,
# AWS access key ids and 40-character secret keys, credentials in URLs.
#
#   debug_bundle.sh [-o DIR]      DIR: where to write csr_ha_debug_<host>_<time>.tar.gz
#                                 (default /bootflash when it exists, as the original, else
#                                 the HA directory $CSR_HA_DIR, default ~/cloud/HA)
# Commands and files used, overridable for tests: CSR_HA_SYSTEMCTL (systemctl), CSR_HA_CRONTAB
# (crontab), CSR_HA_JOURNALCTL (journalctl), CSR_HA_MESSAGES (/var/log/messages).
set -u

die() {
  echo "400: debug_bundle: $*" >&2
  exit 1
}

out_dir=""
while [ $# -gt 0 ]; do
  case $1 in
    -o)
      [ $# -ge 2 ] || die "-o needs a directory"
      out_dir=$2
      shift 2
      ;;
    -h | --help)
      sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *) die "unknown argument '$1'; see -h" ;;
  esac
done

ha_dir=${CSR_HA_DIR:-${HOME:-/tmp}/cloud/HA}
if [ -z "$out_dir" ]; then
  if [ -d /bootflash ] && [ -w /bootflash ]; then out_dir=/bootflash; else out_dir=$ha_dir; fi
fi
[ -d "$out_dir" ] || die "output directory $out_dir does not exist"
SYSTEMCTL=${CSR_HA_SYSTEMCTL:-systemctl}
CRONTAB=${CSR_HA_CRONTAB:-crontab}
JOURNALCTL=${CSR_HA_JOURNALCTL:-journalctl}
MESSAGES=${CSR_HA_MESSAGES:-/var/log/messages}

# This file's real path (links followed); csr_ha_lib.sh beside it names and finds the binaries.
self=$(readlink -f -- "$0") || self=$0
csr_ha_self=$self
lib=${self%/*}/csr_ha_lib.sh
[ -f "$lib" ] || lib=$(command -v csr_ha_lib.sh 2>/dev/null) || lib=""
[ -f "$lib" ] || die "csr_ha_lib.sh is neither beside $self nor on PATH; reinstall the package"
. "$lib"
find_bin() { # find_bin NAME: prints the binary's path, if any
  ! csr_ha_find "$1" || echo "$csr_ha_found"
}

host=$(hostname 2>/dev/null || uname -n)
host=$(printf '%s' "$host" | tr -c 'A-Za-z0-9._-' '_')
stamp=$(date -u +%Y%m%d_%H%M%S)
name=csr_ha_debug_${host}_${stamp}
umask 077
work=$(mktemp -d "${TMPDIR:-/tmp}/csr_ha_debug.XXXXXX") || die "cannot create a temp directory"
trap 'rm -rf "$work"' EXIT
trap 'exit 1' HUP INT TERM
stage=$work/$name
mkdir "$stage" || die "cannot create $stage"

# Known secrets: every appKey value in node_file (as stored, and percent-decoded), replaced
# literally wherever they appear, on top of the patterns below.
secrets=$work/secrets
: >"$secrets"
for f in "$ha_dir/node_file" "$ha_dir/node_file.orig"; do
  [ -f "$f" ] || continue
  awk '
    BEGIN { for (i = 0; i < 256; i++) hex[sprintf("%02X", i)] = sprintf("%c", i) }
    function decode(s,   out, h) {
      out = ""
      while (match(s, /%[0-9A-Fa-f][0-9A-Fa-f]/)) {
        h = toupper(substr(s, RSTART + 1, 2))
        out = out substr(s, 1, RSTART - 1) hex[h]
        s = substr(s, RSTART + 3)
      }
      return out s
    }
    {
      line = $0
      while (match(line, /[Kk]ey=[^ ]+/)) {
        v = substr(line, RSTART, RLENGTH); sub(/^[^=]*=/, "", v)
        line = substr(line, RSTART + RLENGTH)
        print v; print decode(v)
      }
      line = $0
      while (match(line, /[Kk]ey'"'"'[ ]*:[ ]*'"'"'[^'"'"']+/)) {
        v = substr(line, RSTART, RLENGTH); sub(/^[^:]*:[ ]*'"'"'/, "", v)
        print v
        line = substr(line, RSTART + RLENGTH)
      }
    }' "$f" >>"$secrets"
done

# redact < in > out
redact() {
  # Known values first: a pattern below may cut a secret in two (a key holding "Secret=").
  awk -v list="$secrets" '
      BEGIN { while ((getline s < list) > 0) if (length(s) >= 4) secret[s] = 1 }
      {
        line = $0
        for (s in secret) {
          out = ""
          while ((i = index(line, s)) > 0) {
            out = out substr(line, 1, i - 1) "REDACTED"
            line = substr(line, i + length(s))
          }
          line = out line
        }
        print line
      }' |
  sed -E \
    -e 's/([A-Za-z_]*([Kk]ey|KEY|[Ss]ecret|SECRET|[Tt]oken|TOKEN|[Pp]assword|PASSWORD|[Ss]ignature|SIGNATURE|[Cc]redential|CREDENTIAL)[ ]*=[ ]*)[^ &"'"'"',;]+/\1REDACTED/g' \
    -e 's/(["'"'"'][A-Za-z_]*([Kk]ey|KEY|[Ss]ecret|SECRET|[Tt]oken|TOKEN|[Pp]assword|PASSWORD|[Ss]ignature)["'"'"'][ ]*:[ ]*["'"'"'])[^"'"'"']*/\1REDACTED/g' \
    -e 's/([Aa]uthorization[ ]*[:=][ ]*).*/\1REDACTED/g' \
    -e 's/([Bb]earer[ ]+)[A-Za-z0-9._~+\/=-]+/\1REDACTED/g' \
    -e 's/eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*/REDACTED_JWT/g' \
    -e 's/(^|[^A-Za-z0-9])(AKIA|ASIA)[A-Z0-9]{16}/\1REDACTED_AWS_KEY_ID/g' \
    -e 's/(^|[^A-Za-z0-9\/+=])[A-Za-z0-9\/+]{40}([^A-Za-z0-9\/+=]|$)/\1REDACTED\2/g' \
    -e 's/(sig=)[^&" ]+/\1REDACTED/g' \
    -e 's#(://)[^/@ :]+:[^/@ ]+@#\1REDACTED@#g'
}

copy() { # copy SRC DEST: a redacted copy of a text file
  mkdir -p -- "$(dirname -- "$2")" && redact <"$1" >"$2"
}

if [ -d "$ha_dir" ]; then
  for f in node_file node_file.orig cloud csr_ha.log csr_ha.log.1 ha_server.out; do
    [ -f "$ha_dir/$f" ] && copy "$ha_dir/$f" "$stage/$f"
  done
  for d in events route_tables; do
    [ -d "$ha_dir/$d" ] || continue
    for f in "$ha_dir/$d"/*; do
      [ -f "$f" ] && copy "$f" "$stage/$d/${f##*/}"
    done
  done
  ls -la "$ha_dir" >"$stage/ha_dir_listing.txt" 2>&1
else
  echo "HA directory $ha_dir does not exist" >"$stage/ha_dir_listing.txt"
fi

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "uname: $(uname -a)"
  echo "user: $(id)"
  echo "HA dir: $ha_dir"
  echo "cloud word: $(cat "$ha_dir/cloud" 2>/dev/null || echo '(none: file)')"
  echo "CSR_HA_CLOUD: ${CSR_HA_CLOUD:-(unset)}"
  [ -f /etc/os-release ] && sed -n 's/^PRETTY_NAME=/os: /p' /etc/os-release
  for b in $csr_ha_binaries; do
    p=$(find_bin "$b")
    if [ -z "$p" ]; then
      echo "$b: not found"
      continue
    fi
    v=$("$p" --version 2>/dev/null | head -n 1)
    sum=$( (sha256sum "$p" || cksum "$p") 2>/dev/null | cut -d' ' -f1)
    echo "$b: $p ${v:-(no --version)} sha256 $sum"
  done
  echo "environment (csr-ha, endpoints, proxies):"
  env | grep -E '^(CSR_HA_|AWS_ENDPOINT|AWS_REGION|AWS_DEFAULT_REGION|GCE_METADATA_HOST|RUST_LOG|HTTPS?_PROXY|NO_PROXY|https?_proxy|no_proxy)' | sort
} 2>&1 | redact >"$stage/versions.txt"

{
  echo "== ha_api -c ping"
  p=$(find_bin ha_api)
  if [ -n "$p" ]; then CSR_HA_DIR=$ha_dir "$p" -c ping 2>&1; else echo "ha_api not found"; fi
  echo "== ha_api -c status"
  if [ -n "$p" ]; then CSR_HA_DIR=$ha_dir "$p" -c status 2>&1; fi
  echo "== systemctl status csr_ha.service"
  if command -v "$SYSTEMCTL" >/dev/null 2>&1; then
    "$SYSTEMCTL" --user status csr_ha.service --no-pager 2>&1 ||
      "$SYSTEMCTL" status csr_ha.service --no-pager 2>&1
  else
    echo "no systemctl"
  fi
  echo "== processes"
  ps -eo pid,ppid,etime,args 2>/dev/null | grep -E 'ha_server|ha_event_handler' | grep -v grep
} 2>&1 | redact >"$stage/service.txt"

{
  echo "== csr-ha cron entries (crontab -l)"
  if command -v "$CRONTAB" >/dev/null 2>&1; then
    "$CRONTAB" -l 2>&1 | grep -E 'csr_ha|revert_nodes|verify_nodes|check_nodes|node_event|ha_api|no crontab'
  else
    echo "no crontab command"
  fi
} 2>&1 | redact >"$stage/cron.txt"

# What the original's debug_ha.sh collected besides the HA directory.
have() { command -v "$1" >/dev/null 2>&1; }
# as_able CMD...: CMD's output; when it fails or prints nothing and we are not root, CMD again
# through password-less sudo (guestshell's user has it; the journal and messages may be root's).
as_able() {
  o=$("$@" 2>&1)
  r=$?
  if { [ $r != 0 ] || [ -z "$o" ]; } && [ "$(id -u)" != 0 ] && have sudo && sudo -n true 2>/dev/null; then
    o=$(sudo -n "$@" 2>&1)
    r=$?
  fi
  [ -z "$o" ] || printf '%s\n' "$o"
  return $r
}

# Archived logs (csr_ha.log.<time>): where ha_server moves a rotated log to outlive guestshell.
case ${CSR_HA_LOG_ARCHIVE_DIR:-} in
  [Nn][Oo][Nn][Ee]) archives="" ;;
  "") archives="/bootflash/guest-share/csr_ha /bootflash/csr_ha" ;;
  *) archives=$CSR_HA_LOG_ARCHIVE_DIR ;;
esac
for d in $archives; do
  [ -d "$d" ] || continue
  for f in "$d"/csr_ha.log.[0-9]*; do
    [ -f "$f" ] && copy "$f" "$stage/archive/${f##*/}"
  done
done

{
  found=0
  if have "$JOURNALCTL"; then
    for scope in --user --system; do
      o=$(as_able "$JOURNALCTL" $scope -u csr_ha.service --no-pager -q -n 2000)
      case $o in '' | '-- No entries --') continue ;; esac
      echo "== journalctl $scope -u csr_ha.service -n 2000"
      printf '%s\n' "$o"
      found=1
    done
    [ $found = 1 ] || echo "no journal entries for csr_ha.service (user or system)"
  else
    echo "no journalctl"
  fi
} 2>&1 | redact >"$stage/journal.txt"

{
  if [ -e "$MESSAGES" ]; then
    echo "== tail -n 2000 $MESSAGES"
    as_able tail -n 2000 "$MESSAGES" || echo "cannot read $MESSAGES"
  else
    echo "no $MESSAGES"
  fi
} 2>&1 | redact >"$stage/messages.txt"

{
  done_pips=""
  for p in pip pip3 pip2; do
    path=$(command -v "$p" 2>/dev/null) || continue
    for d in $done_pips; do [ "$path" -ef "$d" ] && continue 2; done
    done_pips="$done_pips $path"
    echo "== $p freeze ($path)"
    "$path" freeze --disable-pip-version-check 2>&1
  done
  [ -n "$done_pips" ] || echo "no pip, pip3 or pip2"
} 2>&1 | redact >"$stage/pip_freeze.txt"

{
  found=0
  for f in /etc/os-release /etc/redhat-release; do
    [ -f "$f" ] || continue
    echo "== $f"
    cat -- "$f"
    found=1
  done
  [ $found = 1 ] || echo "no /etc/os-release or /etc/redhat-release"
} 2>&1 | redact >"$stage/os-release.txt"

tarball=$out_dir/$name.tar.gz
tar -czf "$work/$name.tar.gz" -C "$work" "$name" || die "tar failed"
mv -f -- "$work/$name.tar.gz" "$tarball" 2>/dev/null || cp -- "$work/$name.tar.gz" "$tarball" ||
  die "cannot write $tarball"
echo "200: wrote $tarball (secrets redacted); attach it to the support case"
