#!/usr/bin/env bash
# Fan-out to one 1,000-member party measured by a client that is not ours (Node.js `ws`,
# deploy/bench/node/fanout.mjs), against this server and against a bare Node.js ws relay
# (deploy/bench/node/relay.mjs: no authentication, state or persistence), turn about:
# `relay` relays the client's small control frame (~110 bytes), `relay340` a frame as big
# as the server's answer (a 340-byte `video_state`).
# Usage: deploy/bench/node-fanout.sh DIR [rounds, default 3] [seconds, default 10]
#   DIR holds the `watch-party` binary and `party_load` example of a release build.
# Needs PostgreSQL, Redis and Node.js (npm installs `ws` under deploy/bench/node).
set -euo pipefail
cd "$(dirname "$0")/../.."
DIR=$1 ROUNDS=${2:-3} SECS=${3:-10}
. deploy/bench/party-env.sh
RELAY_PORT=${RELAY_PORT:-8199}
LOGS=${LOGS:-/tmp/wp-node-fanout}
mkdir -p "$LOGS"
(cd deploy/bench/node && npm install --no-package-lock --no-audit --no-fund --silent)
fresh_db "$DIR/watch-party"

server() {
  local tag=$1
  start_node "$DIR/watch-party" "$LOGS/$tag-node.log"
  "$DIR/party_load" --url "ws://127.0.0.1:$PORT" --parties 1 --members 1000 --setup-only "$LOGS/setup.json" >/dev/null
  node deploy/bench/node/fanout.mjs --setup "$LOGS/setup.json" --seconds "$SECS" >"$LOGS/$tag.log" 2>&1 || true
  stop_node
}

relay() {
  local tag=$1 same=$2
  node deploy/bench/node/relay.mjs "$RELAY_PORT" >"$LOGS/$tag-relay.log" 2>&1 &
  local r=$!
  sleep 0.5
  node deploy/bench/node/fanout.mjs --relay "ws://127.0.0.1:$RELAY_PORT/party" --members 1000 \
    --same-size "$same" --seconds "$SECS" >"$LOGS/$tag.log" 2>&1 || true
  kill $r; wait $r 2>/dev/null || true
}

for r in $(seq 1 "$ROUNDS"); do
  server "r$r-server"
  relay "r$r-relay" false
  relay "r$r-relay340" true
done
printf '%-5s %-8s %9s %9s %6s\n' round target 'p50 ms' 'p99 ms' lost
for r in $(seq 1 "$ROUNDS"); do
  for t in server relay relay340; do
    f=$LOGS/r$r-$t.log
    p50=$(sed -n 's/.* p50 \([0-9.]*\) ms.*/\1/p' "$f")
    p99=$(sed -n 's/.* p99 \([0-9.]*\) ms.*/\1/p' "$f")
    lost=$(sed -n 's/^sockets closed or lost: \([0-9]*\).*/\1/p' "$f")
    printf '%-5s %-8s %9s %9s %6s\n' "$r" "$t" "${p50:-?}" "${p99:-?}" "${lost:-?}"
  done
done
