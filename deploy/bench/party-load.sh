#!/usr/bin/env bash
# Load on the party socket (issue 5), against a release `watch-party realtime` node in its
# own process, driven by realtime/examples/party_load.rs on the same 2 cores:
#   1. 10,000 sockets (100 parties x 100): server memory per socket;
#   2. control frames into 1,000-member parties: fan-out latency p50/p99;
#   3. many busy parties (typing from every socket): frames delivered per second.
# Needs PostgreSQL and Redis up. Usage: deploy/bench/party-load.sh [seconds per run, default 10]
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-10}
. deploy/bench/party-env.sh
SQLX_OFFLINE=true cargo build --release --bin watch-party --quiet
SQLX_OFFLINE=true cargo build --release -p watch-party-realtime --example party_load --quiet
BIN=${CARGO_TARGET_DIR:-target}/release/watch-party
LOAD=${CARGO_TARGET_DIR:-target}/release/examples/party_load
fresh_db "$BIN"

run() {
  start_node "$BIN" /tmp/wp-bench-realtime.log
  $LOAD --url "ws://127.0.0.1:$PORT" --server-pid "$NODE" "$@" --seconds "$SECS" || true
  stop_node
}

echo "== 1. 10,000 sockets in 100 parties of 100 (one chat sender per party, 1/s)"
run --parties 100 --members 100 --senders 1 --kind chat --rate 1
echo "== 2. control frames into 1,000-member parties (2 parties, the host seeks 5/s)"
run --parties 2 --members 1000 --senders 1 --kind control --rate 5
echo "== 3. busy parties: 20 parties x 100 members, every member typing (4 frames/s each, the node forwards up to 2/s)"
run --parties 20 --members 100 --senders 100 --kind typing --rate 4
