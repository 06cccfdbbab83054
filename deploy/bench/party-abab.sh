#!/usr/bin/env bash
# Two builds of the realtime node, turn about (A B A B ...), under the same load: the
# way to compare versions on a shared machine whose speed drifts between runs.
# Usage: deploy/bench/party-abab.sh A_DIR B_DIR [rounds, default 3] [seconds, default 10]
#   where each DIR holds a `watch-party` binary and the `party_load` example of a release
#   build (copy them out of target/release after `cargo build --release --bin watch-party`
#   and `cargo build --release -p watch-party-realtime --example party_load` at each commit).
# Per round and build: busy parties (20 x 100, typing 4/s from every member: frames/s)
# and control frames into two 1,000-member parties (fan-out p50/p99). Prints a table;
# logs, with the CPU steal seen meanwhile, under $LOGS (default /tmp/wp-abab).
set -euo pipefail
A=$1 B=$2 ROUNDS=${3:-3} SECS=${4:-10}
# Sockets connect one at a time by default: a build from before presence coalescing
# loses most of its sockets to a 50-at-a-time connect (deploy/bench/join-storm.sh), and
# a fan-out to the survivors is not comparable. HANDSHAKES=50 for the join-storm pace.
HANDSHAKES=${HANDSHAKES:-1}
. "$(dirname "$0")/party-env.sh"
LOGS=${LOGS:-/tmp/wp-abab}
mkdir -p "$LOGS"
top -b -d 2 | awk '/^%Cpu/{print; fflush()} /^START|^END/{print; fflush()}' >"$LOGS/cpu.log" 2>&1 &
MON=$!
trap 'kill $MON 2>/dev/null || true' EXIT
fresh_db "$B/watch-party"

run() {
  local dir=$1 tag=$2; shift 2
  start_node "$dir/watch-party" "$LOGS/$tag-node.log"
  echo "START $tag $(date +%T)" >>"$LOGS/cpu.log"
  "$dir/party_load" --url "ws://127.0.0.1:$PORT" --server-pid "$NODE" "$@" --seconds "$SECS" --handshakes "$HANDSHAKES" \
    >"$LOGS/$tag.log" 2>&1 || true
  echo "END $tag $(date +%T)" >>"$LOGS/cpu.log"
  stop_node
}

for r in $(seq 1 "$ROUNDS"); do
  for v in A B; do
    dir=$A; [ "$v" = B ] && dir=$B
    run "$dir" "r$r-$v-busy" --parties 20 --members 100 --senders 100 --kind typing --rate 4
    run "$dir" "r$r-$v-control" --parties 2 --members 1000 --senders 1 --kind control --rate 5
  done
done
printf '%-5s %-3s %12s %10s %10s\n' round ver 'busy fr/s' 'ctl p50' 'ctl p99'
for r in $(seq 1 "$ROUNDS"); do
  for v in A B; do
    fps=$(sed -n 's/.*: \([0-9]*\) frames\/s.*/\1/p' "$LOGS/r$r-$v-busy.log")
    p50=$(sed -n 's/.* p50 \([0-9.]*\) ms.*/\1/p' "$LOGS/r$r-$v-control.log")
    p99=$(sed -n 's/.* p99 \([0-9.]*\) ms.*/\1/p' "$LOGS/r$r-$v-control.log")
    printf '%-5s %-3s %12s %10s %10s\n' "$r" "$v" "${fps:-?}" "${p50:-?}" "${p99:-?}"
  done
done
