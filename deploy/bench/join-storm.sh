#!/usr/bin/env bash
# Join storm (issue 12): 1,000 members connect to one party, 50 handshakes at a time,
# every socket reading slowly (20,000 frames/s over the whole load process), while the
# host seeks 5 times a second from the moment it is connected. Two builds turn about
# (A B A B ...), as in party-abab.sh.
# Usage: deploy/bench/join-storm.sh A_DIR B_DIR [rounds, default 3] [seconds, default 20]
#   each DIR holding the `watch-party` binary and the `party_load` example of a release
#   build. Prints sockets lost, connect time, control fan-out p50/p99 (during and after
#   the joins) and server memory per socket; logs under $LOGS (default /tmp/wp-storm).
set -euo pipefail
A=$1 B=$2 ROUNDS=${3:-3} SECS=${4:-20}
PORT=${BENCH_PORT:-8198}
DB=watch_party_bench_party
export DATABASE_URL=postgres://postgres@127.0.0.1:5432/$DB DATABASE_MAX_CONNECTIONS=20
export REDIS_PREFIX=benchparty BIND_ADDR=127.0.0.1:$PORT PUBLIC_URL=http://127.0.0.1:$PORT
export CLICKHOUSE_DATABASE=watch_party_bench JWT_SECRET=bench-secret-bench-secret-bench-secret RUST_LOG=warn
ulimit -n "$(ulimit -Hn)"
LOGS=${LOGS:-/tmp/wp-storm}
mkdir -p "$LOGS"
psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
"$B/watch-party" migrate >/dev/null

run() {
  local dir=$1 tag=$2
  redis-cli --scan --pattern 'benchparty:*' | xargs -r redis-cli del >/dev/null
  "$dir/watch-party" realtime >"$LOGS/$tag-node.log" 2>&1 &
  local node=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.1; done
  "$dir/party_load" --url "ws://127.0.0.1:$PORT" --server-pid "$node" --parties 1 --members 1000 \
    --senders 1 --kind control --rate 5 --handshakes 50 --read-rate 20000 --during-joins true \
    --seconds "$SECS" >"$LOGS/$tag.log" 2>&1 || true
  kill $node; wait $node 2>/dev/null || true
}

for r in $(seq 1 "$ROUNDS"); do
  run "$A" "r$r-A"
  run "$B" "r$r-B"
done
printf '%-5s %-3s %6s %8s %21s %21s %11s\n' round ver lost 'joins s' 'ctl p50/p99 (joining)' 'ctl p50/p99 (after)' 'KiB/socket'
for r in $(seq 1 "$ROUNDS"); do
  for v in A B; do
    f=$LOGS/r$r-$v.log
    lost=$(sed -n 's/^sockets closed by the server or lost before the end: \([0-9]*\).*/\1/p' "$f")
    secs=$(sed -n 's/^connected [0-9]* sockets in \([0-9.]*\) s.*/\1/p' "$f")
    during=$(sed -n 's/.*while joining, to members already in .* p50 \([0-9.]*\) ms, p99 \([0-9.]*\) ms.*/\1 \/ \2/p' "$f")
    after=$(sed -n 's/.*once all joined .* p50 \([0-9.]*\) ms, p99 \([0-9.]*\) ms.*/\1 \/ \2/p' "$f")
    kib=$(sed -n 's/.*: \([0-9.]*\) KiB per socket/\1/p' "$f")
    printf '%-5s %-3s %6s %8s %21s %21s %11s\n' "$r" "$v" "${lost:-?}" "${secs:-?}" "${during:-?}" "${after:-—}" "${kib:-?}"
  done
done
