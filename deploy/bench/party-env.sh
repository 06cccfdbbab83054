# Sourced by the party benchmarks (party-load.sh, party-abab.sh, join-storm.sh,
# node-fanout.sh): one release `watch-party realtime` node on $PORT with its own
# database and Redis prefix, and how to start and stop it.
PORT=${BENCH_PORT:-8198}
DB=watch_party_bench_party
export DATABASE_URL=postgres://postgres@127.0.0.1:5432/$DB DATABASE_MAX_CONNECTIONS=20
export REDIS_PREFIX=benchparty BIND_ADDR=127.0.0.1:$PORT PUBLIC_URL=http://127.0.0.1:$PORT
export CLICKHOUSE_DATABASE=watch_party_bench JWT_SECRET=bench-secret-bench-secret-bench-secret RUST_LOG=warn
ulimit -n "$(ulimit -Hn)"  # 10,000 sockets need 10,000+ descriptors on each side

# fresh_db BIN: an empty database, migrated by BIN.
fresh_db() {
  psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
  "$1" migrate >/dev/null
}

# start_node BIN LOG: a node with empty Redis state, answering /health on return; its
# pid in NODE.
start_node() {
  redis-cli --scan --pattern 'benchparty:*' | xargs -r redis-cli del >/dev/null
  "$1" realtime >"$2" 2>&1 &
  NODE=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.1; done
}

stop_node() {
  kill "$NODE"
  wait "$NODE" 2>/dev/null || true
}
