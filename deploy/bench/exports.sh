#!/usr/bin/env bash
# CSV export benchmark (issue 15): the user directory of N accounts (default 1,000,000)
# exported by the release binary's `export` worker in its own process, against the
# targets "1,000,000 users in ≤ 30 s, worker RSS ≤ 100 MB", then the same export with
# its worker killed (SIGKILL) a third of the way and a fresh worker finishing it.
#   1. seeds N users in SQL (triggers off while seeding), a few with commas, quotes,
#      line breaks and formulas in their names;
#   2. POST /api/admin/users/export/ (every column), polls until done; the run's time
#      (started_at → finished_at, the worker's own) and the wall time from the request;
#      the worker's peak RSS (VmHWM, /proc) after the run;
#   3. downloads the file through the signed link and parses it with Python's csv module
#      (rows, columns per row, the neutralised formula);
#   4. the kill run: a second export, the worker killed at ≥ N/3 rows, another started;
#      attempts, rows, and the files under the export's directory.
# Needs PostgreSQL, Redis and ClickHouse up (deploy/dev/services.sh), curl, python3.
# Usage: deploy/bench/exports.sh [users, default 1000000]   (BENCH_REUSE=1 keeps a seeded DB)
set -euo pipefail
cd "$(dirname "$0")/../.."
USERS=${1:-1000000}
PORT=${BENCH_PORT:-8197}
DB=watch_party_bench_exports_$USERS
PG="psql -q -h 127.0.0.1 -U postgres -d $DB -v ON_ERROR_STOP=1"
STORE=/tmp/wp-bench-exports
export DATABASE_URL=postgres://postgres@127.0.0.1:5432/$DB
export REDIS_PREFIX=benchexports BIND_ADDR=127.0.0.1:$PORT PUBLIC_URL=http://127.0.0.1:$PORT
export CLICKHOUSE_DATABASE=watch_party_bench STORAGE_DIR=$STORE EMAIL_FILE_DIR=$STORE/mail
export RATE_LIMIT_MULTIPLIER=1000000 JWT_SECRET=bench-secret-bench-secret-bench-secret RUST_LOG=warn
export WORKER_HEARTBEAT_SECS=1 WORKER_MISSED_HEARTBEATS=2
BIN=${CARGO_TARGET_DIR:-target}/release/watch-party
SQLX_OFFLINE=true cargo build --release --bin watch-party --quiet
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true' EXIT

seeded=$(psql -qAt -h 127.0.0.1 -U postgres -d $DB -c "SELECT count(*) FROM users WHERE username LIKE 'bench%'" 2>/dev/null || echo 0)
if [ -n "${BENCH_REUSE:-}" ] && [ "$seeded" = "$USERS" ]; then
  echo "== reusing $DB ($USERS users seeded before)"
  $BIN migrate >/dev/null
else
  psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
  $BIN migrate >/dev/null
  echo "== seeding $USERS users"
  t0=$(date +%s.%N)
  $PG <<SQL
SET session_replication_role = replica; -- no search triggers while seeding
INSERT INTO users (id, username, email, password_hash, display_name, locale, timezone, role,
                   status, email_verified_at, totp_enabled_at, created_at, last_login_at)
  SELECT gen_random_uuid(), 'bench' || i, 'bench' || i || '@example.com', '!',
         CASE WHEN i % 1000 = 1 THEN '=HYPERLINK("http://x","y")'
              WHEN i % 1000 = 2 THEN 'Smith, "Jo"' || E'\n' || 'Jr'
              ELSE 'Bench User ' || i END,
         (ARRAY['en', 'en-GB', 'pt-BR', 'de', 'es-MX'])[1 + i % 5],
         (ARRAY['UTC', 'Europe/Berlin', 'America/Sao_Paulo'])[1 + i % 3],
         CASE WHEN i % 500 = 0 THEN 'moderator' ELSE 'user' END,
         CASE WHEN i % 97 = 0 THEN 'suspended' ELSE 'active' END,
         CASE WHEN i % 7 = 0 THEN NULL ELSE now() END,
         CASE WHEN i % 11 = 0 THEN now() END,
         now() - make_interval(mins => i),
         CASE WHEN i % 3 = 0 THEN NULL ELSE now() - make_interval(secs => i) END
    FROM generate_series(1, $USERS) i;
ANALYZE users;
SQL
  echo "   seeded in $(echo "$(date +%s.%N) - $t0" | bc) s"
fi
rm -rf "$STORE"; mkdir -p "$STORE/mail"
redis-cli --scan --pattern "benchexports:*" | xargs -r redis-cli del >/dev/null

$BIN api >/tmp/wp-bench-exports-api.log 2>&1 & PIDS+=($!)
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.1; done
name="benchadmin$$"
token=$(curl -sf -X POST "http://127.0.0.1:$PORT/api/auth/register/" -H 'content-type: application/json' \
  -d "{\"username\":\"$name\",\"email\":\"$name@example.com\",\"password\":\"correct horse battery staple\"}" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["access_token"])')
$BIN set-role --username "$name" --role admin >/dev/null
api() { curl -sf -H "Authorization: Bearer $token" -H 'content-type: application/json' "$@"; }
field() { python3 -c "import json,sys; d=json.load(sys.stdin)['data']; print(d$1)"; }

start_worker() {
  $BIN worker --queues export=1 >>/tmp/wp-bench-exports-worker.log 2>&1 &
  WORKER=$!; PIDS+=($WORKER)
}
new_export() {
  api -X POST "http://127.0.0.1:$PORT/api/admin/users/export/" -d '{}' | field "['id']"
}
status() { api "http://127.0.0.1:$PORT/api/admin/exports/$1/"; }
wait_done() {
  while :; do
    s=$(status "$1" | field "['status']")
    [ "$s" = done ] && return 0
    [ "$s" = failed ] && { status "$1"; exit 1; }
    sleep 0.1
  done
}

echo "== run 1: export $USERS users (+1 admin), every column"
start_worker
sleep 1
t0=$(date +%s.%N)
id=$(new_export)
wait_done "$id"
wall=$(echo "$(date +%s.%N) - $t0" | bc)
hwm=$(awk '/VmHWM/ {print $2}' /proc/$WORKER/status)
read -r run rows size attempts < <($PG -At -F ' ' -c \
  "SELECT round(extract(epoch FROM finished_at - started_at)::numeric, 2), rows_done, size_bytes, attempts FROM table_exports WHERE id = '$id'")
echo "   rows $rows, $size bytes, attempts $attempts"
echo "   worker run (started_at → finished_at): $run s; wall from the request: $(printf %.2f "$wall") s"
echo "   worker peak RSS (VmHWM): $((hwm / 1024)) MiB"
url=$(status "$id" | field "['download_url']")
curl -sf "$url" -o "$STORE/download.csv"
python3 - "$STORE/download.csv" "$USERS" <<'PY'
import csv, sys
path, users = sys.argv[1], int(sys.argv[2])
with open(path, newline="") as f:
    rows = list(csv.reader(f))
header, body = rows[0], rows[1:]
assert len(body) == users + 1, (len(body), users)
assert all(len(r) == len(header) for r in body), "a row with another column count"
names = header.index("display_name")
formula = [r[names] for r in body if r[names].startswith("'=")]
tricky = [r[names] for r in body if r[names] == 'Smith, "Jo"\nJr']
assert formula and tricky, "the seeded formulas and quoted names are in the file"
print(f"   parsed back: {len(body)} rows x {len(header)} columns; {len(formula)} formulas neutralised, {len(tricky)} quoted names intact")
PY

echo "== run 2: the worker killed (SIGKILL) a third of the way, another one finishes"
id=$(new_export)
while :; do
  done_rows=$(status "$id" | field "['rows_done']")
  [ "$done_rows" -ge $((USERS / 3)) ] && break
  sleep 0.05
done
kill -9 "$WORKER"
echo "   killed at $done_rows rows"
start_worker
wait_done "$id"
read -r rows attempts < <($PG -At -F ' ' -c "SELECT rows_done, attempts FROM table_exports WHERE id = '$id'")
echo "   finished: rows $rows, attempts $attempts"
echo "   files under exports/tables: $(cd "$STORE/exports/tables" && ls | tr '\n' ' ')"
