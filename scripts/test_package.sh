#!/usr/bin/env bash
# The router packages, end to end (run by scripts/test.sh; CSR_HA_SKIP_PACKAGE=1 skips it):
#  1. scripts/package.sh builds the wheel and the tarball; no ELF file in them may need a GLIBC
#     symbol above 2.17, and they hold exactly the router's files (no bench binary).
#  2. The wheel, pip-installed into a fresh venv, runs the quick start by the original script
#     names (create_node.py, …) from another directory, with the original's demo steps: re-running
#     create_node on an existing node updates it; a missing required flag is refused.
#  3. `pip install --user` into a temporary HOME, then csr_ha_setup and csr_ha_setup --uninstall,
#     with fake systemctl and crontab.
#  4. The upgrade from a fake original Python install (its cron line, unit, sock_file, Python-format
#     node_file and a running stand-in ha_server.py): --dry-run changes nothing; the real run ends
#     with one cron line of ours, our unit, the old server stopped and every node shown.
#  5. The tarball: bin/csr_ha_setup installs into ~/.local and --uninstall removes it.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd -P)
cd "$repo"

if [[ "${CSR_HA_SKIP_PACKAGE:-0}" == 1 ]]; then
    echo "test_package: SKIPPED (CSR_HA_SKIP_PACKAGE=1): the router packages were NOT built or tested"
    exit 0
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/csr_ha_test_package.XXXXXX")
pids_to_kill=()
cleanup() {
    for p in "${pids_to_kill[@]}"; do kill "$p" 2>/dev/null || true; done
    for d in "$tmp"/*/HA "$tmp"/*/home/cloud/HA; do
        [[ -p "$d/ha_server.fifo" ]] || continue
        for b in "$tmp"/venv/bin "$tmp"/*/home/.local/bin; do
            [[ -x "$b/ha_api" ]] && CSR_HA_DIR=$d "$b/ha_api" -c stop >/dev/null 2>&1 || true
        done
    done
    rm -rf "$tmp"
}
trap cleanup EXIT

checks=0
fail() {
    echo "test_package: FAILED: $*" >&2
    exit 1
}
ok() {
    checks=$((checks + 1))
    echo "ok - $*"
}
expect_contains() { # expect_contains WHAT HAYSTACK NEEDLE
    [[ "$2" == *"$3"* ]] || fail "$1: expected to contain '$3', got:
$2"
}
expect_not_contains() {
    [[ "$2" != *"$3"* ]] || fail "$1: expected not to contain '$3', got:
$2"
}

# ---------------------------------------------------------------------------------------------
echo "== 1. build the packages"
scripts/package.sh | tee "$tmp/package.log"
version=$(sed -n 's/^version *= *"\([^"]*\)".*/\1/p' Cargo.toml | head -n 1)
shopt -s nullglob
wheels=(dist/csr_ha-"$version"-py3-none-*manylinux_2_17_x86_64*.whl)
[[ ${#wheels[@]} == 1 ]] || fail "expected one wheel dist/csr_ha-$version-py3-none-…manylinux_2_17_x86_64….whl, found: ${wheels[*]:-none}"
wheel=$repo/${wheels[0]}
tarball=$repo/dist/csr_ha-$version-x86_64-linux.tar.gz
[[ -f "$tarball" ]] || fail "no $tarball"
python3 scripts/check_glibc.py --max 2.17 "$wheel" "$tarball" || fail "a binary needs a GLIBC symbol above 2.17"
ok "no ELF file in the wheel or the tarball needs a GLIBC symbol above 2.17"

eval "$(sh scripts/csr_ha_setup --manifest)"
want=$(printf '%s\n' $BINARIES $WRAPPERS $SCRIPTS | sort)
in_wheel=$(python3 -c 'import sys, zipfile
for n in zipfile.ZipFile(sys.argv[1]).namelist():
    p = n.split("/")
    if len(p) == 3 and p[0].endswith(".data") and p[1] == "scripts": print(p[2])
    elif not p[0].endswith(".dist-info"): print("unexpected: " + n)' "$wheel" | sort)
[[ "$in_wheel" == "$want" ]] || fail "wheel files differ from the router's list:
$(diff <(echo "$want") <(echo "$in_wheel"))"
in_tar=$(tar -tzf "$tarball" | grep -v '/$' | sort)
[[ "$in_tar" == "$(printf '%s\n' $want | sed 's|^|bin/|')" ]] || fail "tarball files differ:
$in_tar"
ok "wheel and tarball hold the router's binaries, the original script names and csr_ha_setup, no bench"

# ---------------------------------------------------------------------------------------------
echo "== 2. the quick start from the installed wheel, by the original script names"
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-index "$wheel"
bin=$tmp/venv/bin
for f in $WRAPPERS revert_nodes.sh csr_ha_setup; do
    [[ -f "$bin/$f" && ! -L "$bin/$f" && -x "$bin/$f" ]] || fail "pip did not install $f as an executable file"
done
mkdir -p "$tmp/qs/elsewhere" "$tmp/qs/home"
qs() { # qs CMD ARGS...: an installed command, from another directory, with a plain environment
    (cd "$tmp/qs/elsewhere" && env -i PATH="$bin:/usr/bin:/bin" HOME="$tmp/qs/home" \
        CSR_HA_DIR="$tmp/qs/HA" CSR_HA_CLOUD=file "$@")
}
qs ha_api.py -c start >/dev/null || fail "ha_api.py -c start"
mkdir -p "$tmp/qs/HA/route_tables"
echo '{"routes":[{"destination":"10.99.0.0/16","next_hop":"10.0.1.10"},{"destination":"10.98.0.0/16","next_hop":"10.0.1.10"}]}' \
    >"$tmp/qs/HA/route_tables/demo.json"
out=$(qs create_node.py -i 1 -t demo -n 10.0.1.20 -m secondary) || fail "create_node.py -i 1: $out"
expect_contains "create_node.py -i 1" "$out" "200: Successfully created new node with index 1"
out=$(qs create_node.py -i 2 -t demo -n 10.0.1.10 -r 10.99.0.0/16 -m primary) || fail "create_node.py -i 2: $out"
out=$(qs node_event.py -i 1 -e peerFail) || fail "node_event.py peerFail: $out"
hops() { # the demo table as "destination via next_hop" lines
    python3 -c 'import json, sys
for r in json.load(open(sys.argv[1]))["routes"]: print(r["destination"], "via", r["next_hop"])' \
        "$tmp/qs/HA/route_tables/demo.json"
}
[[ "$(hops)" == $'10.99.0.0/16 via 10.0.1.20\n10.98.0.0/16 via 10.0.1.20' ]] || fail "table after peerFail: $(hops)"
out=$(qs node_event.py -i all -e revert) || fail "node_event.py revert: $out"
[[ "$(hops)" == $'10.99.0.0/16 via 10.0.1.10\n10.98.0.0/16 via 10.0.1.20' ]] || fail "table after revert: $(hops)"
out=$(qs show_node.py -i all) || fail "show_node.py -i all: $out"
expect_contains "show_node.py -i all" "$out" "routeTable     demo"
ok "quick start (peerFail, revert, show_node) through the installed *.py commands"

# The original's demo steps: create_node on an existing node updates it; a missing flag refuses.
out=$(qs create_node.py -i 2 -t demo -n 10.0.1.11 -m primary) || fail "create_node.py again: $out"
expect_contains "create_node.py on node 2 again" "$out" "200: Updated node 2 Successfully"
out=$(qs show_node.py -i 2)
expect_contains "node 2 after the update" "$out" "nextHop        10.0.1.11"
expect_contains "node 2 keeps its route" "$out" "route          10.99.0.0/16"
set +e
out=$(qs create_node.py -i 3 -t demo)
rc=$?
set -e
[[ $rc == 2 ]] || fail "create_node.py without -n exited $rc: $out"
expect_contains "create_node.py without -n" "$out" "400: create_node: the following arguments are required for file: -n (nextHop)"
set +e
qs show_node.py -i 3 >/dev/null
rc=$?
set -e
[[ $rc == 1 ]] || fail "node 3 was stored after a refused create_node"
ok "re-running create_node.py updates the node; omitting a required flag is refused (exit 2)"
qs ha_api.py -c stop >/dev/null

# ---------------------------------------------------------------------------------------------
# A temporary machine: HOME, fake systemctl/crontab/loginctl, and the wheel pip-installed --user.
fakes() { # fakes DIR
    mkdir -p "$1"
    cat >"$1/crontab" <<'EOF'
#!/bin/sh
echo "crontab $*" >> "$FAKE_DIR/calls"
case $1 in
  -l) [ -f "$FAKE_DIR/crontab.table" ] || { echo "no crontab" >&2; exit 1; }; cat "$FAKE_DIR/crontab.table" ;;
  -r) rm -f "$FAKE_DIR/crontab.table" ;;
  *) cat "$1" > "$FAKE_DIR/crontab.table" ;;
esac
EOF
    cat >"$1/systemctl" <<'EOF'
#!/bin/sh
echo "systemctl $*" >> "$FAKE_DIR/calls"
case "$*" in *is-system-running*) echo running ;; *is-active*) exit 3 ;; esac
exit 0
EOF
    printf '#!/bin/sh\necho "loginctl $*" >> "$FAKE_DIR/calls"\n' >"$1/loginctl"
    chmod 755 "$1"/*
}
machine() { # machine NAME: $tmp/NAME with home/ and fake/
    mkdir -p "$tmp/$1/home" "$tmp/$1/elsewhere"
    fakes "$tmp/$1/fake"
}
on() { # on NAME CMD ARGS...: runs CMD as on machine NAME
    local m=$tmp/$1
    shift
    (cd "$m/elsewhere" && env -i PATH="$m/home/.local/bin:/usr/bin:/bin" HOME="$m/home" \
        FAKE_DIR="$m/fake" CSR_HA_SYSTEMCTL="$m/fake/systemctl" CSR_HA_CRONTAB="$m/fake/crontab" \
        CSR_HA_LOGINCTL="$m/fake/loginctl" CSR_HA_SYSTEM_UNIT_DIR="$m/etc-systemd-system" \
        CSR_HA_LEGACY_UNIT="$m/etc-systemd-user/csr_ha.service" "$@")
}
# pip --user needs a Python whose user site is visible: a venv over the system's site-packages.
python3 -m venv --system-site-packages "$tmp/userpip"
pip_user() { # pip_user NAME: `pip install --user <wheel>` with HOME on machine NAME
    local m=$tmp/$1
    env HOME="$m/home" PYTHONUSERBASE="$m/home/.local" "$tmp/userpip/bin/python" -m pip install \
        --user --quiet --disable-pip-version-check --no-index --no-warn-script-location "$wheel" ||
        fail "pip install --user"
}

echo "== 3. pip install --user, csr_ha_setup, csr_ha_setup --uninstall"
machine fresh
pip_user fresh
h=$tmp/fresh/home
echo "0 1 * * * /usr/bin/backup.sh" >"$tmp/fresh/fake/crontab.table"
out=$(on fresh csr_ha_setup --cloud aws --verify-every 30 --scope user) || fail "csr_ha_setup: $out"
echo "$out"
expect_contains "csr_ha_setup" "$out" "200: csr-ha installed in $h/.local (cloud aws, HA directory $h/cloud/HA, server via systemd)"
expect_not_contains "csr_ha_setup (pip owns the commands)" "$out" "installed $h/.local/bin/"
unit=$(cat "$h/.config/systemd/user/csr_ha.service")
expect_contains "our unit" "$unit" "ExecStart=\"$h/.local/bin/ha_server\""
expect_contains "our unit" "$unit" "Restart=always"
cron=$(cat "$tmp/fresh/fake/crontab.table")
[[ $(grep -c '# csr_ha: revert' <<<"$cron") == 1 && $(grep -c '# csr_ha: verify' <<<"$cron") == 1 ]] ||
    fail "cron jobs: $cron"
expect_contains "cron keeps the user's line" "$cron" "0 1 * * * /usr/bin/backup.sh"
expect_contains "cron revert job" "$cron" "'$h/.local/bin/revert_nodes.sh' >/dev/null"
[[ $(cat "$h/cloud/HA/cloud") == aws ]] || fail "cloud word"
calls=$(cat "$tmp/fresh/fake/calls")
expect_contains "systemctl calls" "$calls" "systemctl --user enable csr_ha.service"
expect_not_contains "no original's unit here" "$calls" "systemctl disable"
out=$(on fresh csr_ha_setup --cloud aws --scope user) || fail "csr_ha_setup again: $out"
expect_not_contains "second run" "$out" "installed /"
ok "csr_ha_setup installs the unit and cron jobs around the pip-installed commands; a second run changes nothing"

out=$(on fresh csr_ha_setup --uninstall) || fail "csr_ha_setup --uninstall: $out"
echo "$out"
[[ ! -e "$h/.config/systemd/user/csr_ha.service" ]] || fail "unit left after --uninstall"
[[ "$(cat "$tmp/fresh/fake/crontab.table")" == "0 1 * * * /usr/bin/backup.sh" ]] || fail "cron after --uninstall: $(cat "$tmp/fresh/fake/crontab.table")"
expect_contains "--uninstall" "$out" "kept the commands in $h/.local/bin: pip installed them"
[[ -x "$h/.local/bin/ha_server" ]] || fail "--uninstall removed a file pip owns"
! grep -q 'csr_ha:' "$h/.profile" "$h/.bashrc" 2>/dev/null || fail "PATH line left after --uninstall"
[[ -f "$h/cloud/HA/node_file" || ! -e "$h/cloud/HA/cloud" ]] || fail "cloud word left after --uninstall"
ok "csr_ha_setup --uninstall removes the unit, cron jobs and PATH lines, keeps pip's files"

# ---------------------------------------------------------------------------------------------
echo "== 4. upgrade from the original Python package"
machine legacy
h=$tmp/legacy/home
site=$h/.local/lib/python3.6/site-packages
mkdir -p "$site/csr_ha/client_api" "$site/csr_ha/server" "$h/cloud/HA/events" "$tmp/legacy/etc-systemd-user"
printf '#!/bin/bash\nnode_event.py -i all -e revert\n' >"$site/csr_ha/client_api/revert_nodes.sh"
# A stand-in for the original server: same command line shape, sleeps until stopped.
printf 'import time\nwhile True:\n    time.sleep(1)\n' >"$site/csr_ha/server/ha_server.py"
(cd "$h/cloud/HA" && exec python3 "$site/csr_ha/server/ha_server.py" start) &
old_pid=$!
pids_to_kill+=("$old_pid")
legacy_cron="*/5 * * * * bash $site/csr_ha/client_api/revert_nodes.sh"
printf '%s\n%s\n' "0 1 * * * /usr/bin/backup.sh" "$legacy_cron" >"$tmp/legacy/fake/crontab.table"
cat >"$tmp/legacy/etc-systemd-user/csr_ha.service" <<EOF
[Unit]
Description=CSR HA server
[Service]
ExecStart=/usr/bin/python3 $site/csr_ha/server/ha_server.py start
Restart=always
User=guestshell
WorkingDirectory=$h/cloud/HA
[Install]
WantedBy=multi-user.target
EOF
python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$h/cloud/HA/sock_file"
cat >"$h/cloud/HA/node_file" <<'EOF'
{'index': '1', 'routeTableId': 'rtb-c8bb373c6f6e3b358', 'region': 'us-east-1', 'eniId': 'eni-d18010c94d601fb03', 'route': '10.99.0.0/16', 'mode': 'primary'}
{'index': '7', 'routeTableId': 'rtb-0a1b2c3d4e5f60718', 'region': 'us-west-2', 'eniId': 'eni-0a1b2c3d4e5f60718', 'mode': 'secondary'}
EOF
cat >"$h/.bashrc" <<EOF
alias create_node=create_node.py
alias node_event=node_event.py
export PATH=\$HOME/.local/bin:$site/csr_ha:$site/csr_cloud:\$PATH
EOF
pip_user legacy
sleep 0.3
kill -0 "$old_pid" 2>/dev/null || fail "the stand-in ha_server.py did not start"

snapshot() { (cd "$tmp/legacy" && find home etc-systemd-user -print0 |
    sort -z | xargs -0 ls -ld --time-style=+%s.%N | awk '{$1=$1; print}' && cat fake/crontab.table home/cloud/HA/node_file); }
before=$(snapshot)
out=$(on legacy csr_ha_setup --cloud aws --scope user --dry-run) || fail "--dry-run: $out"
echo "$out"
expect_contains "--dry-run" "$out" "dry-run: would stop, disable and remove the original's unit $tmp/legacy/etc-systemd-user/csr_ha.service"
expect_contains "--dry-run" "$out" "dry-run: would stop the original's server, pid $old_pid: "
expect_contains "--dry-run" "$out" "python3 $site/csr_ha/server/ha_server.py start"
expect_contains "--dry-run" "$out" "dry-run: would remove the original's socket $h/cloud/HA/sock_file"
expect_contains "--dry-run" "$out" "dry-run: would replace the original's cron line: $legacy_cron"
expect_contains "--dry-run" "$out" "node_file holds 2 node(s) in the original's format"
[[ "$(snapshot)" == "$before" ]] || fail "--dry-run changed files:
$(diff <(echo "$before") <(snapshot))"
kill -0 "$old_pid" 2>/dev/null || fail "--dry-run stopped the original's server"
ok "--dry-run lists the original's unit, server, socket, cron line and node_file and changes nothing"

out=$(on legacy csr_ha_setup --cloud aws --scope user) || fail "csr_ha_setup upgrade: $out"
echo "$out"
expect_contains "upgrade" "$out" "replaced the original's unit: stopped, disabled and removed $tmp/legacy/etc-systemd-user/csr_ha.service"
expect_contains "upgrade" "$out" "stopped the original's server, pid $old_pid"
expect_contains "upgrade" "$out" "removed the original's socket $h/cloud/HA/sock_file"
expect_contains "upgrade" "$out" "replaced the original's cron line: $legacy_cron"
expect_contains "upgrade" "$out" "kept the original's lines in $h/.bashrc"
expect_contains "upgrade" "$out" "200: csr-ha installed in $h/.local (cloud aws"
wait "$old_pid" 2>/dev/null || true
! kill -0 "$old_pid" 2>/dev/null || fail "the original's server (pid $old_pid) still runs"
[[ ! -e "$tmp/legacy/etc-systemd-user/csr_ha.service" ]] || fail "the original's unit is still there"
[[ ! -e "$h/cloud/HA/sock_file" ]] || fail "sock_file is still there"
cron=$(cat "$tmp/legacy/fake/crontab.table")
[[ $(grep -c 'revert_nodes.sh' <<<"$cron") == 1 && $(grep -c '# csr_ha: revert' <<<"$cron") == 1 ]] ||
    fail "expected one revert cron line, ours: $cron"
expect_contains "cron keeps the user's line" "$cron" "0 1 * * * /usr/bin/backup.sh"
expect_contains "our unit" "$(cat "$h/.config/systemd/user/csr_ha.service")" "ExecStart=\"$h/.local/bin/ha_server\""
calls=$(cat "$tmp/legacy/fake/calls")
expect_contains "systemctl calls" "$calls" "systemctl disable --now csr_ha.service"
expect_contains "systemctl calls" "$calls" "systemctl --user enable csr_ha.service"
bashrc=$(cat "$h/.bashrc")
expect_contains ".bashrc keeps the original's alias" "$bashrc" "alias create_node=create_node.py"
# What systemd would now run: our server, which imports the original's node_file.
on legacy ha_api.py -c start >/dev/null || fail "ha_api.py -c start after the upgrade"
out=$(on legacy show_node.py -i all) || fail "show_node.py -i all after the upgrade: $out"
on legacy ha_api.py -c stop >/dev/null
expect_contains "show_node.py -i all" "$out" "routeTableId   rtb-c8bb373c6f6e3b358"
expect_contains "show_node.py -i all" "$out" "routeTableId   rtb-0a1b2c3d4e5f60718"
[[ $(grep -c '^index ' <<<"$out") == 2 ]] || fail "expected two nodes: $out"
[[ -f "$h/cloud/HA/node_file.orig" ]] || fail "node_file.orig not kept"
ok "upgrade: one cron line of ours, our unit, the original's server stopped, both nodes shown"

# ---------------------------------------------------------------------------------------------
echo "== 5. the tarball"
machine tar
h=$tmp/tar/home
mkdir -p "$tmp/tar/x"
tar -xzf "$tarball" -C "$tmp/tar/x"
out=$(on tar "$tmp/tar/x/bin/csr_ha_setup" --cloud file --service none) || fail "tarball csr_ha_setup: $out"
expect_contains "tarball install" "$out" "installed $h/.local/bin/ha_server"
out=$(on tar show_node.py -h) || fail "show_node.py -h: $out"
expect_contains "installed show_node.py" "$out" "usage: show_node"
out=$(on tar csr_ha_setup --uninstall --purge) || fail "tarball --uninstall: $out"
[[ ! -e "$h/.local" && ! -e "$h/cloud" ]] || fail "left after --uninstall --purge: $(find "$h")"
ok "tarball: bin/csr_ha_setup installs into ~/.local; --uninstall --purge removes everything"

echo "test_package: $checks checks passed ($(grep -o 'built in [0-9]* s' "$tmp/package.log"))"
