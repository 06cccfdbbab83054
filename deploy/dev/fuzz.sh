#!/usr/bin/env bash
# Fuzzes the API from its own OpenAPI document with schemathesis (PyPI), against the real
# server (`watch-party all`, PostgreSQL, Redis, ClickHouse) with a signed-in user:
# every generated request must get an answer the document allows: no 5xx, a documented
# status and content type, a body matching the documented schema, and no schema-valid
# request refused (`positive_data_acceptance`; the few rules no schema can state are
# listed, each with its reason, in deploy/dev/schemathesis.toml). A fixed seed makes the
# run repeat. Routes that end the caller's session
# (logout-all, revoking a session by id) are left out; everything else runs as that one
# user (the stateful phase follows links from what it creates).
#
#   deploy/dev/fuzz.sh                   # the CI run (FUZZ_EXAMPLES=10 per operation)
#   FUZZ_EXAMPLES=100 deploy/dev/fuzz.sh # longer
#   deploy/dev/fuzz.sh --include-path-regex '/api/videos/'   # extra schemathesis args
#   deploy/dev/fuzz.sh --seed 7          # another seed (the last --seed wins)
#   FUZZ_ROLE=admin deploy/dev/fuzz.sh --include-path-regex '/admin/'  # as staff
set -euo pipefail
cd "$(dirname "$0")/../.."
deploy/dev/services.sh >/dev/null
export SQLX_OFFLINE=true
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/watch-party-target}
# FUZZ_BIN: a binary already built (otherwise the debug build of this checkout).
if [ -z "${FUZZ_BIN:-}" ]; then
  cargo build --quiet --bin watch-party
fi
bin=${FUZZ_BIN:-$CARGO_TARGET_DIR/debug/watch-party}

venv=${FUZZ_VENV:-$HOME/.cache/watch-party-schemathesis}
if ! "$venv/bin/st" --version 2>/dev/null | grep -q "4.32.5"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "schemathesis==4.32.5"
fi

run="fuzz$$"
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
psql -q -h 127.0.0.1 -U postgres -d postgres -c "CREATE DATABASE wp_$run" >/dev/null
server=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null || true
  psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS wp_$run WITH (FORCE)" >/dev/null || true
  curl -s -X POST "http://127.0.0.1:8123/?query=DROP%20DATABASE%20IF%20EXISTS%20wp_$run" >/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

DATABASE_URL="postgres://postgres@127.0.0.1:5432/wp_$run" \
REDIS_PREFIX="$run" CLICKHOUSE_DATABASE="wp_$run" \
STORAGE_DIR="$work/storage" EMAIL_FILE_DIR="$work/mail" \
BIND_ADDR="127.0.0.1:$port" PUBLIC_URL="$base" \
JWT_SECRET="fuzzing-secret-0123456789abcdef-$run" \
ACCESS_TOKEN_TTL_SECS=7200 RATE_LIMIT_MULTIPLIER=100000 COMMENTS_PER_MINUTE=100000 \
RUST_LOG="warn,access=off" \
  "$bin" all >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 1 150); do
  curl -sf "$base/health" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -sf "$base/health" >/dev/null || { cat "$work/server.log"; exit 1; }

token=$(curl -sf -X POST "$base/api/auth/register/" -H 'content-type: application/json' \
  -d '{"username":"fuzzer","email":"fuzzer@example.com","password":"correct horse battery staple"}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["access_token"])')

# FUZZ_ROLE=admin (or moderator): the user is staff, so the staff routes are reached
# (run it on those routes: as staff, the rules for other routes differ).
if [ -n "${FUZZ_ROLE:-}" ]; then
  psql -q -h 127.0.0.1 -U postgres -d "wp_$run" -c "UPDATE users SET role = '$FUZZ_ROLE' WHERE username = 'fuzzer'" >/dev/null
fi

checks=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,positive_data_acceptance
status=0
"$venv/bin/st" --config-file deploy/dev/schemathesis.toml run "$base/api/schema/" \
  --checks "$checks" \
  --header "Authorization: Bearer $token" \
  --exclude-path-regex '/auth/(logout-all|sessions/\{id\})/' \
  --seed 20261202 --generation-database none --max-examples "${FUZZ_EXAMPLES:-10}" --workers 1 \
  --request-timeout 30 --no-color --output-truncate true \
  "$@" || status=$?
if [ "$status" -ne 0 ] && grep -q "panicked" "$work/server.log"; then
  grep -B2 -A10 "panicked" "$work/server.log" | head -60
fi
exit "$status"
