#!/usr/bin/env bash
# Poll votes in a 1,000-member party (issue 14): every member votes once over its socket
# within 5 s (1,000 votes, 200 a second), against a release `watch-party realtime` node,
# driven by realtime/examples/party_load.rs (`--kind poll`) on the same 2 cores. Reports
# when each member saw the final counts after the last vote was sent, and the most
# `poll_updated` frames a member got in one second; once with the node's throttle
# (POLL_UPDATE_EVERY_MS=500, the default) and once without (0: one frame per vote).
# Needs PostgreSQL and Redis up. Usage: deploy/bench/poll-votes.sh [members, default 1000]
set -euo pipefail
cd "$(dirname "$0")/../.."
MEMBERS=${1:-1000}
. deploy/bench/party-env.sh
SQLX_OFFLINE=true cargo build --release --bin watch-party --quiet
SQLX_OFFLINE=true cargo build --release -p watch-party-realtime --example party_load --quiet
BIN=${CARGO_TARGET_DIR:-target}/release/watch-party
LOAD=${CARGO_TARGET_DIR:-target}/release/examples/party_load
fresh_db "$BIN"

for every in 500 0; do
  echo "== POLL_UPDATE_EVERY_MS=$every: $MEMBERS members, each votes once within 5 s"
  POLL_UPDATE_EVERY_MS=$every start_node "$BIN" /tmp/wp-bench-realtime.log
  $LOAD --url "ws://127.0.0.1:$PORT" --server-pid "$NODE" --parties 1 --members "$MEMBERS" \
    --senders "$MEMBERS" --kind poll --rate 0.2 --seconds 5 || true
  stop_node
done
