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
. "$(dirname "$0")/party-env.sh"
LOGS=${LOGS:-/tmp/wp-storm}
mkdir -p "$LOGS"
fresh_db "$B/watch-party"

run() {
  local dir=$1 tag=$2
  start_node "$dir/watch-party" "$LOGS/$tag-node.log"
  "$dir/party_load" --url "ws://127.0.0.1:$PORT" --server-pid "$NODE" --parties 1 --members 1000 \
    --senders 1 --kind control --rate 5 --handshakes 50 --read-rate 20000 --during-joins true \
    --seconds "$SECS" >"$LOGS/$tag.log" 2>&1 || true
  stop_node
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
