#!/usr/bin/env bash
# The router packages, end to end (run by scripts/test.sh; CSR_HA_SKIP_PACKAGE=1 skips it):
#  1. scripts/package.sh builds the wheel and the tarball; no ELF file in them may need a GLIBC
#     symbol above 2.17, and they hold exactly the router's files (no bench binary). The wheel is
#     tagged py2.py3 and its version (the binaries' too) is above the original's 2.0.2.
#  2. The wheel, pip-installed into a fresh venv, runs the quick start by the original script
#     names (create_node.py, …) from another directory, with the original's demo steps: re-running
#     create_node on an existing node updates it; a missing required flag is refused.
#  3. Guestshell's pips: pip 8.1.2 on Python 2.7 (IOS XE 16.x) and pip 9.0.3 on Python 3.6 (17.x),
#     from pyenv's interpreters, in throw-away environments cached in .venv-oldpip/. Each installs
#     the wheel with `pip install --user` into a temporary HOME, runs node_event.py -h and a
#     file-provider failover; then `pip install --user -U` from an index holding ours and a
#     stand-in original 2.0.2 keeps ours. A missing interpreter is reported as SKIPPED.
#  4. `pip install --user` into a temporary HOME, then csr_ha_setup and csr_ha_setup --uninstall,
#     with fake systemctl and crontab.
#  5. The upgrade from a fake original Python install (its cron line, unit, sock_file, Python-format
#     node_file and a running stand-in ha_server.py): --dry-run changes nothing; the real run ends
#     with one cron line of ours, our unit, the old server stopped and every node shown.
#  6. The tarball: bin/csr_ha_setup installs into ~/.local and --uninstall removes it.
#  7. The wheel's binaries (the TLS stack that ships) fail over an AWS route table in moto served
#     over HTTPS under a throw-away CA: with AWS_CA_BUNDLE naming the CA, peerFail and revert
#     succeed; with no CA variable the event fails with a 400. moto comes from .venv
#     (scripts/setup_venv.sh, run here if needed).
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
wheels=(dist/csr_ha-"$version"-py2.py3-none-linux_x86_64.*manylinux_2_17_x86_64*.whl)
[[ ${#wheels[@]} == 1 ]] || fail "expected one wheel dist/csr_ha-$version-py2.py3-none-linux_x86_64.…manylinux_2_17_x86_64….whl, found: ${wheels[*]:-none}"
wheel=$repo/${wheels[0]}
tarball=$repo/dist/csr_ha-$version-x86_64-linux.tar.gz
[[ -f "$tarball" ]] || fail "no $tarball"
python3 scripts/check_glibc.py --max 2.17 "$wheel" "$tarball" || fail "a binary needs a GLIBC symbol above 2.17"
ok "no ELF file in the wheel or the tarball needs a GLIBC symbol above 2.17"

# What pip reads: the tags in WHEEL, the version in METADATA. Above 2.0.2, or `pip install -U`
# with the original on an index goes back to it.
python3 - "$wheel" <<'PY' || fail "the wheel's tags or version"
import re, sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
read = lambda name: next(z.read(n).decode() for n in z.namelist() if n.endswith(".dist-info/" + name))
tags = set(re.findall(r"^Tag: (\S+)$", read("WHEEL"), re.M))
want = {p + "-none-" + plat for p in ("py2", "py3")
        for plat in ("linux_x86_64", "manylinux2014_x86_64", "manylinux_2_17_x86_64")}
if tags != want:
    sys.exit("WHEEL tags %s, expected %s" % (sorted(tags), sorted(want)))
version = re.search(r"^Version: (\S+)$", read("METADATA"), re.M).group(1)
numbers = tuple(int(x) for x in re.findall(r"\d+", version)[:3])
if numbers <= (2, 0, 2):
    sys.exit("version %s is not above the original csr_ha 2.0.2" % version)
PY
ok "the wheel is tagged py2.py3 (linux_x86_64, manylinux2014, manylinux_2_17) and its version $version is above 2.0.2"

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
out=$("$bin/node_event" --version) || fail "node_event --version: $out"
expect_contains "the wheel's binaries" "$out" "(csr-ha $version)"

run_in() { # run_in DIR BIN CMD ARGS...: CMD from BIN, in DIR/elsewhere with a plain environment
    local dir=$1 b=$2
    shift 2
    mkdir -p "$dir/elsewhere" "$dir/home"
    (cd "$dir/elsewhere" && env -i PATH="$b:/usr/bin:/bin" HOME="$dir/home" \
        CSR_HA_DIR="$dir/HA" CSR_HA_CLOUD=file "$@")
}
hops() { # hops DIR: DIR's demo table as "destination via next_hop" lines
    python3 -c 'import json, sys
for r in json.load(open(sys.argv[1]))["routes"]: print(r["destination"], "via", r["next_hop"])' \
        "$1/HA/route_tables/demo.json"
}
# file_failover DIR BIN: with the commands in BIN and the HA directory DIR/HA, starts the server,
# creates a secondary node 1 (all routes) and a primary node 2 (one route) on a demo table file,
# and fails over node 1; the server is left running.
file_failover() {
    local dir=$1 b=$2 out
    run_in "$dir" "$b" ha_api.py -c start >/dev/null || fail "$b/ha_api.py -c start"
    mkdir -p "$dir/HA/route_tables"
    echo '{"routes":[{"destination":"10.99.0.0/16","next_hop":"10.0.1.10"},{"destination":"10.98.0.0/16","next_hop":"10.0.1.10"}]}' \
        >"$dir/HA/route_tables/demo.json"
    out=$(run_in "$dir" "$b" create_node.py -i 1 -t demo -n 10.0.1.20 -m secondary) || fail "create_node.py -i 1: $out"
    expect_contains "$b/create_node.py -i 1" "$out" "200: Successfully created new node with index 1"
    out=$(run_in "$dir" "$b" create_node.py -i 2 -t demo -n 10.0.1.10 -r 10.99.0.0/16 -m primary) ||
        fail "create_node.py -i 2: $out"
    out=$(run_in "$dir" "$b" node_event.py -i 1 -e peerFail) || fail "$b/node_event.py peerFail: $out"
    [[ "$(hops "$dir")" == $'10.99.0.0/16 via 10.0.1.20\n10.98.0.0/16 via 10.0.1.20' ]] ||
        fail "table after peerFail with $b: $(hops "$dir")"
}
qs() { run_in "$tmp/qs" "$bin" "$@"; }
file_failover "$tmp/qs" "$bin"
out=$(qs node_event.py -i all -e revert) || fail "node_event.py revert: $out"
[[ "$(hops "$tmp/qs")" == $'10.99.0.0/16 via 10.0.1.10\n10.98.0.0/16 via 10.0.1.20' ]] || fail "table after revert: $(hops "$tmp/qs")"
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
echo "== 3. guestshell's pips: pip 8.1.2 on Python 2.7, pip 9.0.3 on Python 3.6"
# A stand-in for the original csr_ha 2.0.2 (what pip sees of it: the name, the version, a
# node_event.py of its own), as a wheel in a wheelhouse beside ours: what a bootflash
# wheelhouse or a mirror holding both looks like to `pip install -U`.
wheelhouse=$tmp/wheelhouse
mkdir -p "$wheelhouse"
cp "$wheel" "$wheelhouse/"
python3 - "$wheelhouse" <<'PY'
import base64, hashlib, sys, zipfile
files = {
    "csr_ha/__init__.py": "ORIGINAL = '2.0.2'\n",
    "csr_ha-2.0.2.data/scripts/node_event.py": "#!/bin/sh\necho 'the original csr_ha 2.0.2'\n",
    "csr_ha-2.0.2.dist-info/METADATA": "Metadata-Version: 2.1\nName: csr_ha\nVersion: 2.0.2\n",
    "csr_ha-2.0.2.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test_package\nRoot-Is-Purelib: true\nTag: py2-none-any\nTag: py3-none-any\n",
}
record = ""
for name, text in files.items():
    digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
    record += "%s,sha256=%s,%d\n" % (name, digest, len(text))
files["csr_ha-2.0.2.dist-info/RECORD"] = record + "csr_ha-2.0.2.dist-info/RECORD,,\n"
with zipfile.ZipFile(sys.argv[1] + "/csr_ha-2.0.2-py2.py3-none-any.whl", "w") as z:
    for name, text in files.items():
        info = zipfile.ZipInfo(name)
        info.external_attr = 0o755 << 16
        z.writestr(info, text)
PY
pyenv_root=$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")
oldpip=$repo/.venv-oldpip # kept between runs (in .gitignore); made again when missing or wrong
skipped=()
# old_pip_env LABEL PYTHON PIP_VERSION: prints the path of an environment of PYTHON with
# pip==PIP_VERSION, made on first use (virtualenv for Python 2, which has no venv module). It
# sees the system's site-packages, so the user site is on its path as on a router: pip --user
# then sees what is installed there.
old_pip_env() {
    local label=$1 python=$2 pip_version=$3 env=$oldpip/$1
    if [[ "$("$env/bin/pip" --version 2>/dev/null)" != "pip $pip_version "* ]] ||
        ! grep -q '^include-system-site-packages = true' "$env/pyvenv.cfg" 2>/dev/null; then
        rm -rf "$env"
        mkdir -p "$oldpip"
        if "$python" -c 'import venv' 2>/dev/null; then
            "$python" -m venv --system-site-packages "$env" >&2 || fail "$python -m venv"
        else
            # virtualenv in a directory of its own: pyenv's interpreter is left as it is.
            "$python" -m pip install --quiet --disable-pip-version-check --target "$oldpip/virtualenv-$label" \
                'virtualenv<20.22' >&2 || fail "pip install virtualenv for $python"
            PYTHONPATH=$oldpip/virtualenv-$label "$python" -m virtualenv --quiet --no-download \
                --system-site-packages "$env" >&2 || fail "virtualenv with $python"
        fi
        "$env/bin/python" -m pip install --quiet --disable-pip-version-check "pip==$pip_version" >&2 ||
            fail "pip==$pip_version into $env"
    fi
    echo "$env"
}
installed_versions() { # installed_versions USERBASE: the csr_ha versions pip recorded there
    local d
    for d in "$1"/lib/python*/site-packages/csr_ha-*.dist-info; do
        [[ -d "$d" ]] && d=${d##*/csr_ha-} && echo "${d%.dist-info}"
    done
}
for spec in "py27 2.7.18 8.1.2" "py36 3.6.15 9.0.3"; do
    read -r label py_version pip_version <<<"$spec"
    python=$pyenv_root/versions/$py_version/bin/python
    if [[ ! -x "$python" ]]; then
        echo "test_package: SKIPPED (no $python): the wheel was NOT installed with pip $pip_version on Python $py_version"
        skipped+=("pip $pip_version/Python $py_version")
        continue
    fi
    penv=$(old_pip_env "$label" "$python" "$pip_version")
    m=$tmp/$label
    user_pip() { # user_pip ARGS...: `pip install --user ARGS` into the temporary HOME $m/home
        env HOME="$m/home" PYTHONUSERBASE="$m/home/.local" "$penv/bin/pip" install --user --quiet \
            --disable-pip-version-check --no-index --no-deps "$@"
    }
    mkdir -p "$m/home"
    out=$(user_pip "$wheel" 2>&1) || fail "pip $pip_version on Python $py_version refused the wheel: $out"
    [[ "$(installed_versions "$m/home/.local")" == "$version" ]] ||
        fail "after pip $pip_version installed the wheel: $(installed_versions "$m/home/.local")"
    b=$m/home/.local/bin
    out=$(run_in "$m" "$b" node_event.py -h) || fail "node_event.py -h from pip $pip_version's install: $out"
    expect_contains "node_event.py -h (pip $pip_version)" "$out" "usage: node_event"
    file_failover "$m" "$b"
    run_in "$m" "$b" ha_api.py -c stop >/dev/null
    # `pip install -U` from an index holding the original and ours: the higher version stays (a
    # version below 2.0.2 would be "upgraded" to the original; pip in a virtualenv then installs
    # it beside ours, as it uninstalls nothing outside the environment).
    out=$(user_pip -U --find-links "$wheelhouse" csr_ha 2>&1) || fail "pip $pip_version install -U: $out"
    [[ "$(installed_versions "$m/home/.local")" == "$version" ]] ||
        fail "pip $pip_version install -U csr_ha left: $(installed_versions "$m/home/.local")"
    out=$(run_in "$m" "$b" node_event.py -h) || fail "node_event.py -h after pip install -U: $out"
    expect_contains "node_event.py after pip install -U" "$out" "usage: node_event"
    ok "pip $pip_version on Python $py_version: --user install, node_event.py -h, a failover; install -U with 2.0.2 on the index keeps $version"
done

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

echo "== 4. pip install --user, csr_ha_setup, csr_ha_setup --uninstall"
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
echo "== 5. upgrade from the original Python package"
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
echo "== 6. the tarball"
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

# ---------------------------------------------------------------------------------------------
echo "== 7. AWS over HTTPS with the wheel's binaries: moto under a throw-away CA"
scripts/setup_venv.sh
tls=$tmp/tls
mkdir -p "$tls"
# A CA, and a certificate for 127.0.0.1 signed by it (v3, with the IP in subjectAltName, as
# rustls requires).
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=csr-ha test CA" \
    -keyout "$tls/ca.key" -out "$tls/ca.pem" 2>/dev/null || fail "openssl: the CA"
openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout "$tls/key.pem" \
    -out "$tls/server.csr" 2>/dev/null || fail "openssl: the server key"
printf '%s\n' "subjectAltName=IP:127.0.0.1" "basicConstraints=CA:FALSE" \
    "keyUsage=digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" >"$tls/server.ext"
openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" -CAcreateserial \
    -days 2 -extfile "$tls/server.ext" -out "$tls/cert.pem" 2>/dev/null || fail "openssl: the server certificate"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
endpoint=https://127.0.0.1:$port
"$repo/.venv/bin/moto_server" -H 127.0.0.1 -p "$port" -c "$tls/cert.pem" -k "$tls/key.pem" \
    >"$tmp/moto.log" 2>&1 &
pids_to_kill+=("$!")
# EC2 in moto, through boto3 trusting the CA: a VPC, a subnet, two ENIs (A: this router, B: its
# peer) and a route table with 10.99.0.0/16 via B. Also waits for moto to answer.
aws_py() { # aws_py SCRIPT ARGS...: python with boto3's EC2 client on moto as `ec2`
    local script=$1
    shift
    env AWS_ACCESS_KEY_ID=AKIAMOTOTESTKEY00001 AWS_SECRET_ACCESS_KEY=moto-does-not-check-this \
        "$repo/.venv/bin/python" -c "import sys, time, boto3
ec2 = boto3.client('ec2', endpoint_url='$endpoint', region_name='us-east-1', verify='$tls/ca.pem')
def via(rtb, dest):
    for r in ec2.describe_route_tables(RouteTableIds=[rtb])['RouteTables'][0]['Routes']:
        if r.get('DestinationCidrBlock') == dest:
            return r.get('NetworkInterfaceId')
$script" "$@"
}
read -r rtb eni_a eni_b < <(aws_py '
for _ in range(600):
    try:
        ec2.describe_regions()
        break
    except Exception as e:
        err = e
        time.sleep(0.1)
else:
    sys.exit("moto did not answer over HTTPS: %s" % err)
vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
a, b = (ec2.create_network_interface(SubnetId=subnet)["NetworkInterface"]["NetworkInterfaceId"] for _ in "ab")
rtb = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
ec2.create_route(RouteTableId=rtb, DestinationCidrBlock="10.99.0.0/16", NetworkInterfaceId=b)
print(rtb, a, b)') || fail "moto over HTTPS: $(tail -5 "$tmp/moto.log")"
[[ -n "${eni_b:-}" ]] || fail "moto over HTTPS: no route table made: $(tail -5 "$tmp/moto.log")"
via() { aws_py 'print(via(sys.argv[1], "10.99.0.0/16"))' "$rtb"; }
# aws CA_VARIABLES... -- CMD ARGS...: a wheel command with the AWS endpoint, keys and no
# metadata service, and only the CA variables given: `env -i` drops this machine's
# SSL_CERT_FILE, AWS_CA_BUNDLE and REQUESTS_CA_BUNDLE, and any CSR_HA_CA_BUNDLE.
aws() {
    local vars=()
    while [[ $1 != -- ]]; do vars+=("$1"); shift; done
    shift
    (cd "$tmp/qs/elsewhere" && env -i PATH="$bin:/usr/bin:/bin" HOME="$tmp/aws/home" \
        CSR_HA_DIR="$tmp/aws/HA" CSR_HA_CLOUD=aws AWS_ENDPOINT_URL="$endpoint" \
        AWS_ACCESS_KEY_ID=AKIAMOTOTESTKEY00001 AWS_SECRET_ACCESS_KEY=moto-does-not-check-this \
        AWS_SHARED_CREDENTIALS_FILE=/nonexistent/credentials AWS_CONFIG_FILE=/nonexistent/config \
        AWS_EC2_METADATA_DISABLED=true AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:9 \
        "${vars[@]}" "$@")
}
mkdir -p "$tmp/aws/home"
# Without a CA variable the built-in roots do not know the CA: create_node stores node 1 (its
# table check fails), and peerFail fails with a 400 naming the untrusted certificate.
aws -- ha_api -c start >/dev/null || fail "ha_api -c start (aws, no CA variable)"
out=$(aws -- create_node.py -i 1 -t "$rtb" -rg us-east-1 -n "$eni_a" -r 10.99.0.0/16 -m primary) ||
    fail "create_node.py without a CA variable: $out"
started=$(date +%s.%N)
set +e
out=$(aws -- node_event.py -i 1 -e peerFail)
rc=$?
set -e
took=$(python3 -c "import sys; print('%.1f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$started" "$(date +%s.%N)")
aws -- ha_api -c stop >/dev/null
[[ $rc == 1 && "$out" == "400: "* ]] || fail "peerFail without a CA variable exited $rc, expected 1 and a 400: line: $out"
expect_contains "peerFail without a CA variable" "$out" "UnknownIssuer"
[[ "$(via)" == "$eni_b" ]] || fail "peerFail without a CA variable moved the route"
ok "without a CA variable, peerFail over HTTPS fails with a 400 in $took s: ${out%%$'\n'*}"

# With AWS_CA_BUNDLE (the server runs the events, so it gets the variable): create_node reads
# the table, peerFail moves the route to A, the peer takes it back, revert returns it to A.
# CSR_HA_PACKAGE_SKIP_CA_BUNDLE=1 skips only this step, saying so (for a branch whose HTTP
# client does not read AWS_CA_BUNDLE yet); the default runs it.
if [[ "${CSR_HA_PACKAGE_SKIP_CA_BUNDLE:-0}" == 1 ]]; then
    echo "test_package: SKIPPED (CSR_HA_PACKAGE_SKIP_CA_BUNDLE=1): the failover with AWS_CA_BUNDLE was NOT run"
    skipped+=("AWS_CA_BUNDLE failover")
else
    ca=("AWS_CA_BUNDLE=$tls/ca.pem")
    aws "${ca[@]}" -- ha_api -c start >/dev/null || fail "ha_api -c start (aws, AWS_CA_BUNDLE)"
    out=$(aws "${ca[@]}" -- create_node.py -i 1 -t "$rtb" -rg us-east-1 -n "$eni_a" -r 10.99.0.0/16 -m primary) ||
        fail "create_node.py over HTTPS with AWS_CA_BUNDLE: $out"
    expect_contains "create_node.py over HTTPS with AWS_CA_BUNDLE" "$out" "200: Updated node 1 Successfully"
    out=$(aws "${ca[@]}" -- node_event.py -i 1 -e peerFail) || fail "peerFail over HTTPS with AWS_CA_BUNDLE: $out"
    expect_contains "peerFail over HTTPS" "$out" "200: node 1 peerFail: 10.99.0.0/16 in $rtb now via $eni_a"
    [[ "$(via)" == "$eni_a" ]] || fail "after peerFail moto says 10.99.0.0/16 is via $(via), not $eni_a"
    aws_py 'ec2.replace_route(RouteTableId=sys.argv[1], DestinationCidrBlock="10.99.0.0/16", NetworkInterfaceId=sys.argv[2])' \
        "$rtb" "$eni_b" || fail "moving the route back to the peer"
    out=$(aws "${ca[@]}" -- node_event.py -i 1 -e revert) || fail "revert over HTTPS with AWS_CA_BUNDLE: $out"
    [[ "$(via)" == "$eni_a" ]] || fail "after revert moto says 10.99.0.0/16 is via $(via), not $eni_a: $out"
    aws "${ca[@]}" -- ha_api -c stop >/dev/null
    ok "the wheel's binaries fail over and revert a route in moto over HTTPS, trusting AWS_CA_BUNDLE's CA"
fi

# ---------------------------------------------------------------------------------------------
echo "== the router's own network shape with the wheel's binaries (tests/it/aws/netns.rs)"
# guestshell one routed hop behind the router, the metadata service's token reply with IP TTL =
# the hop limit: hop limit 1 falls back to IMDSv1 and fails over, IMDSv2 required names the fix,
# hop limit 2 stays on IMDSv2. Needs `ip netns` (root); the tests say SKIPPED where it is refused.
netns_log=$tmp/netns.log
if CSR_HA_TEST_BIN_DIR="$bin" cargo test --quiet --test it -- aws::netns --nocapture \
    >"$netns_log" 2>&1; then
    if grep -q SKIPPED "$netns_log"; then
        echo "test_package: SKIPPED: the network-namespace cases (ip netns not permitted here)"
        skipped+=("netns with the wheel's binaries")
    else
        ok "the wheel's binaries in the router's network shape: $(grep -o '[0-9]* passed' "$netns_log" | tail -1)"
    fi
else
    fail "the network-namespace cases with the wheel's binaries: $(tail -20 "$netns_log")"
fi

if [[ ${#skipped[@]} -gt 0 ]]; then
    echo "test_package: SKIPPED (see above): ${skipped[*]}"
fi
echo "test_package: $checks checks passed ($(grep -o 'built in [0-9]* s' "$tmp/package.log"))"
