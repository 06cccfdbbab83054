#!/usr/bin/env bash
# Memory of the API under password work (issue 12), against the release binary in its
# own process, driven by api/examples/auth_memory.rs on the same 2 cores:
#   1,000 registrations and 1,000 logins, 16 at a time; then 1,000 wrong passwords at once.
# Prints the API's resident memory after each phase and its peak during the burst.
# Needs PostgreSQL and Redis up. Usage: deploy/bench/auth-memory.sh [users, default 1000]
# Extra environment (e.g. PASSWORD_HASH_CONCURRENCY, MALLOC_ARENA_MAX) goes to the server.
set -euo pipefail
cd "$(dirname "$0")/../.."
USERS=${1:-1000}
PORT=${BENCH_PORT:-8197}
DB=watch_party_bench_auth
export DATABASE_URL=postgres://postgres@127.0.0.1:5432/$DB
export REDIS_PREFIX=benchauth BIND_ADDR=127.0.0.1:$PORT PUBLIC_URL=http://127.0.0.1:$PORT
export CLICKHOUSE_DATABASE=watch_party_bench
export RATE_LIMIT_MULTIPLIER=1000000 JWT_SECRET=bench-secret-bench-secret-bench-secret RUST_LOG=warn
ulimit -n "$(ulimit -Hn)"  # the burst opens 1,000 connections
SQLX_OFFLINE=true cargo build --release --bin watch-party --quiet
SQLX_OFFLINE=true cargo build --release -p watch-party-api --example auth_memory --quiet
TARGET=${CARGO_TARGET_DIR:-target}
BIN=${BENCH_BIN:-$TARGET/release/watch-party}
psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
$BIN migrate >/dev/null
redis-cli --scan --pattern 'benchauth:*' | xargs -r redis-cli del >/dev/null
$BIN api >/tmp/wp-bench-auth.log 2>&1 &
API=$!
trap 'kill $API 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.1; done
"$TARGET"/release/examples/auth_memory --url "http://127.0.0.1:$PORT" --server-pid "$API" \
  --users "$USERS" --concurrency 16 --burst "$USERS"
