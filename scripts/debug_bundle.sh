#!/bin/sh
# Collects what support needs into one tarball, secrets redacted:
#   node_file (+ node_file.orig), events/, csr_ha.log*, ha_server.out, route_tables/, the cloud
#   word, versions (binaries, OS), the service's status, the csr-ha cron entries.
# Redacted: Azure app keys (appKey= in node_file, and the same values anywhere else), anything
# named *key/*secret/*token/*password/signature, Authorization headers, bearer tokens, JWTs,
# AWS access key ids and 40-character secret keys, credentials in URLs.
#
#   debug_bundle.sh [-o DIR]      DIR: where to write csr_ha_debug_<host>_<time>.tar.gz
#                                 (default /bootflash when it exists, as the original, else
#                                 the HA directory $CSR_HA_DIR, default ~/cloud/HA)
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
      sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
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

self=$0
while [ -L "$self" ]; do
  link=$(readlink -- "$self") || break
  case $link in /*) self=$link ;; *) self=${self%/*}/$link ;; esac
done
bin=${CSR_HA_BIN:-$(cd -P -- "$(dirname -- "$self")" && pwd -P)}
find_bin() { # find_bin NAME: prints the binary's path, if any
  if [ -x "$bin/$1" ] && [ -f "$bin/$1" ]; then echo "$bin/$1"; else command -v "$1" 2>/dev/null; fi
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
  for b in ha_server ha_api ha_event_handler create_node set_params clear_params delete_node \
    show_node node_event set_default_aad_app clear_default_aad_app show_auth_applications; do
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

tarball=$out_dir/$name.tar.gz
tar -czf "$work/$name.tar.gz" -C "$work" "$name" || die "tar failed"
mv -f -- "$work/$name.tar.gz" "$tarball" 2>/dev/null || cp -- "$work/$name.tar.gz" "$tarball" ||
  die "cannot write $tarball"
echo "200: wrote $tarball (secrets redacted); attach it to the support case"
