#!/usr/bin/env bash
# Runs every test against real services (PostgreSQL, Redis, ClickHouse, an SMTP server).
# Starts or installs what is missing first. Extra arguments go to cargo nextest
# (e.g. `deploy/dev/test.sh --test jobs`). With COVERAGE=1 the run is instrumented and,
# when whole, reports line coverage per crate and fails under its floors (docs/testing.md).
# The socket frames the tests receive are
# then checked against docs/asyncapi.yaml, and (on a whole run) the ClickHouse SQL is
# checked on two engines (deploy/dev/clickhouse-compat.py).
set -euo pipefail
cd "$(dirname "$0")/../.."
deploy/dev/services.sh --test
export SQLX_OFFLINE=true
# Every frame the test clients receive is recorded, then checked against the AsyncAPI
# document (deploy/dev/check-frames.py).
frames=$(mktemp -d)
trap 'rm -rf "$frames"' EXIT
export WP_RECORD_FRAMES="$frames"
status=0
if [ -n "${COVERAGE:-}" ]; then
  # The same run, instrumented (cargo-llvm-cov; its own target folder): line coverage
  # of every crate, the spawned binaries' too, then the floors of docs/testing.md.
  deploy/dev/coverage-tools.sh
  major=$(rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')
  export LLVM_COV=/usr/bin/llvm-cov-$major LLVM_PROFDATA=/usr/bin/llvm-profdata-$major
  cargo llvm-cov nextest --workspace --no-report --no-fail-fast "$@" || status=$?
  if [ "$#" -eq 0 ]; then
    if cargo llvm-cov report --workspace --json --summary-only --output-path "$frames/coverage.json"; then
      python3 deploy/dev/coverage.py "$frames/coverage.json" || status=1
    else
      echo "coverage: no report (see above)" >&2
      status=1
    fi
  fi
elif cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@" || status=$?
else
  cargo test --workspace --no-fail-fast "$@" || status=$?
fi
if compgen -G "$frames/frames-*.jsonl" >/dev/null; then
  python3 deploy/dev/check-frames.py docs/asyncapi.yaml "$frames" || status=1
fi
# Every ClickHouse migration and analytics query, on the 18.16 server and on a current
# engine (chdb, from PyPI) with hand-worked figures; only on a whole run (no filter).
if [ "$#" -eq 0 ] || [ -n "${CLICKHOUSE_COMPAT:-}" ]; then
  venv=${CHDB_VENV:-$HOME/.cache/watch-party-chdb}
  if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import chdb' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "chdb==4.4.0"
  fi
  CLICKHOUSE_COMPAT_REQUIRE_CHDB=1 "$venv/bin/python" deploy/dev/clickhouse-compat.py || status=1
fi
exit "$status"
