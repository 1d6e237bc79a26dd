#!/usr/bin/env bash
# Quick start: watch a failover on one machine with the embedded `file` provider, no cloud account.
# Builds the binaries, starts a server in a temporary CSR_HA_DIR, creates a route table and two
# nodes (router B's secondary node and router A's primary node), runs a dry run of peerFail, then
# peerFail and revert, shows the table after each and the service's status, and stops the server.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --bins --quiet
BIN="$PWD/target/release"
export PATH="$BIN:$PATH"
export CSR_HA_DIR="$(mktemp -d)/HA"
export CSR_HA_CLOUD=file
trap 'ha_api -c stop >/dev/null 2>&1 || true; rm -rf "$(dirname "$CSR_HA_DIR")"' EXIT

show_table() {
    echo "--- route table demo ($1):"
    cat "$CSR_HA_DIR/route_tables/demo.json"
    echo
}

echo "== HA directory: $CSR_HA_DIR"
ha_api -c start
mkdir -p "$CSR_HA_DIR/route_tables"
cat > "$CSR_HA_DIR/route_tables/demo.json" <<'JSON'
{"routes":[{"destination":"10.99.0.0/16","next_hop":"10.0.1.10"},{"destination":"10.98.0.0/16","next_hop":"10.0.1.10"}]}
JSON
show_table "router A 10.0.1.10 carries everything"

echo "== node 1: router B (10.0.1.20), secondary, every route of the table"
create_node -i 1 -t demo -n 10.0.1.20 -m secondary
echo "== node 2: router A (10.0.1.10), primary, route 10.99.0.0/16"
create_node -i 2 -t demo -n 10.0.1.10 -r 10.99.0.0/16 -m primary

echo "== before it is needed: what would peerFail do, and may this router do it? (writes nothing)"
node_event -i 1 -e peerFail --dry-run
show_table "unchanged by the dry run"

echo "== router A fails: node_event -i 1 -e peerFail"
node_event -i 1 -e peerFail
show_table "after peerFail"

echo "== router A is back: node_event -i all -e revert (primary nodes only)"
node_event -i all -e revert
show_table "after revert"

show_node -i all
echo "== the whole service in one view: ha_api -c status"
ha_api -c status
ha_api -c stop
