#!/usr/bin/env bash
# The CI-sized regression run (docs/testing.md, "Regression run"): the benchmarks behind
# the figures the docs claim, made small enough for every CI run, compared with the
# figures in deploy/dev/regress-baseline.json. It fails on a gross regression only (3×
# worse by default; REGRESS_FACTOR), not on the noise of a shared 2-core machine. The
# full benchmarks stay in docs/benchmarks.md. Needs the services running
# (`deploy/dev/services.sh`; CI has started them).
#   - playback sync: the simulation (`cargo bench -p watch-party-sync --bench sync`,
#     2 seeds), steady-state spread p95 of wp_sync per scenario;
#   - queue: `cargo bench -p watch-party-workers --bench queue`, 3,000 jobs, one round;
#   - broadcast: tests/broadcast.rs's benchmark with 5,000 users (debug build).
set -euo pipefail
cd "$(dirname "$0")/../.."
export SQLX_OFFLINE=true
if [ -n "${REGRESS_OUT:-}" ]; then
  out=$REGRESS_OUT
  mkdir -p "$out"
else
  out=$(mktemp -d)
  trap 'rm -rf "$out"' EXIT
fi

echo "== playback sync simulation"
BENCH_SEEDS=2 cargo bench -q -p watch-party-sync --bench sync | tee "$out/sync.txt" | tail -3

echo "== queue throughput"
db=watch_party_bench
if ! psql -h 127.0.0.1 -U postgres -Atc "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1; then
  createdb -h 127.0.0.1 -U postgres "$db"
fi
DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db" BENCH_JOBS=3000 BENCH_ROUNDS=1 \
  cargo bench -q -p watch-party-workers --bench queue | tee "$out/queue.txt" | tail -2

echo "== broadcast"
# The benchmark asserts every push arrived: a run that lost some fails here.
if ! BENCH_USERS=5000 cargo nextest run -p watch-party --test broadcast --run-ignored only \
  --no-capture -E 'test(benchmark_a_broadcast)' > "$out/broadcast.txt" 2>&1; then
  tail -30 "$out/broadcast.txt"
  echo "regress: the broadcast benchmark failed" >&2
  exit 1
fi
grep "^broadcast to" "$out/broadcast.txt"

python3 deploy/dev/regress.py "$out" deploy/dev/regress-baseline.json
