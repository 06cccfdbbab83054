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
PORT=${BENCH_PORT:-8198}
DB=watch_party_bench_party
export DATABASE_URL=postgres://postgres@127.0.0.1:5432/$DB DATABASE_MAX_CONNECTIONS=20
export REDIS_PREFIX=benchparty BIND_ADDR=127.0.0.1:$PORT PUBLIC_URL=http://127.0.0.1:$PORT
export CLICKHOUSE_DATABASE=watch_party_bench JWT_SECRET=bench-secret-bench-secret-bench-secret RUST_LOG=warn
ulimit -n "$(ulimit -Hn)"  # 10,000 sockets need 10,000+ descriptors on each side
SQLX_OFFLINE=true cargo build --release --bin watch-party --quiet
SQLX_OFFLINE=true cargo build --release -p watch-party-realtime --example party_load --quiet
BIN=target/release/watch-party
LOAD=target/release/examples/party_load
psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
$BIN migrate >/dev/null
redis-cli --scan --pattern 'benchparty:*' | xargs -r redis-cli del >/dev/null

run() {
  $BIN realtime >/tmp/wp-bench-realtime.log 2>&1 &
  NODE=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.1; done
  $LOAD --url "ws://127.0.0.1:$PORT" --server-pid "$NODE" "$@" --seconds "$SECS" || true
  kill $NODE; wait $NODE 2>/dev/null || true
}

echo "== 1. 10,000 sockets in 100 parties of 100 (one chat sender per party, 1/s)"
run --parties 100 --members 100 --senders 1 --kind chat --rate 1
echo "== 2. control frames into 1,000-member parties (2 parties, the host seeks 5/s)"
run --parties 2 --members 1000 --senders 1 --kind control --rate 5
echo "== 3. busy parties: 20 parties x 100 members, every member typing (4 frames/s each, the node forwards up to 2/s)"
run --parties 20 --members 100 --senders 100 --kind typing --rate 4
