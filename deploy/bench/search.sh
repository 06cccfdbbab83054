#!/usr/bin/env bash
# Search benchmarks (issue 17), PostgreSQL backend, against the release binary in its own
# processes: 1,000,000 videos and 100,000 users (10 friends each) seeded in SQL, then
#   1. a full rebuild of the index (`watch-party search-reindex`), documents per second;
#   2. the search worker folding 50,000 changes made in one statement (throughput);
#   3. lag from a committed change to its fold under 500 changes/s for 60 s (pgbench -R),
#      read from the worker's `search_fold_lag_seconds` histogram;
#   4. GET /api/search/ (videos; all kinds) and GET /api/search/suggest/ driven by wrk
#      with random words / prefixes of the seeded vocabulary, signed in.
# Needs PostgreSQL, Redis and ClickHouse up (deploy/dev/services.sh), wrk, pgbench, curl.
# Usage: deploy/bench/search.sh [seconds per wrk run, default 20] [videos, default 1000000]
#   SEED_ONLY=1: seed the database and stop; BENCH_REUSE=1: keep a database seeded before
#   (seeding 1,000,000 videos takes about 25 minutes here).
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-20}
VIDEOS=${2:-1000000}
USERS=$((VIDEOS / 10))
PORT=${BENCH_PORT:-8198}
OPS=${BENCH_OPS_PORT:-9198}
DB=watch_party_bench_search_$VIDEOS
PG="psql -q -h 127.0.0.1 -U postgres -d $DB -v ON_ERROR_STOP=1"
export DATABASE_URL=postgres://postgres@127.0.0.1:5432/$DB
export REDIS_PREFIX=benchsearch BIND_ADDR=127.0.0.1:$PORT PUBLIC_URL=http://127.0.0.1:$PORT
export CLICKHOUSE_DATABASE=watch_party_bench STORAGE_DIR=/tmp/wp-bench-search
export RATE_LIMIT_MULTIPLIER=1000000 JWT_SECRET=bench-secret-bench-secret-bench-secret RUST_LOG=warn
export OPS_TOKEN=bench-ops-token-bench-ops-token
for tool in wrk pgbench curl; do
  command -v $tool >/dev/null || { echo "$tool is needed (apt-get install wrk postgresql-client)" >&2; exit 1; }
done
BIN=${CARGO_TARGET_DIR:-target}/release/watch-party
[ -n "${SEED_ONLY:-}" ] && [ -x "$BIN" ] || SQLX_OFFLINE=true cargo build --release --bin watch-party --quiet
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true' EXIT
seeded=$(psql -qAt -h 127.0.0.1 -U postgres -d $DB -c "SELECT count(*) FROM bench_videos" 2>/dev/null || echo 0)
if [ -n "${BENCH_REUSE:-}" ] && [ "$seeded" = "$VIDEOS" ]; then
  echo "== reusing $DB ($VIDEOS videos seeded before)"
  $BIN migrate >/dev/null
else
psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
$BIN migrate >/dev/null
echo "== seeding $USERS users and $VIDEOS videos"
t0=$(date +%s.%N)
$PG <<SQL
SELECT setseed(0.17);
-- 5,000 pronounceable words; the first ones are picked most often (a skewed vocabulary).
CREATE TABLE bench_vocab AS
  SELECT i, (SELECT string_agg(substr('bcdfghklmnprstvz', 1 + floor(random() * 16)::int, 1)
                               || substr('aeiou', 1 + floor(random() * 5)::int, 1), '')
             FROM generate_series(1, 2 + (i % 3)) WHERE i > 0) AS w
  FROM generate_series(1, 5000) i;
CREATE TABLE bench_words AS SELECT array_agg(w ORDER BY i) AS a FROM bench_vocab;
CREATE TABLE bench_users (n int PRIMARY KEY, id uuid);
INSERT INTO bench_users SELECT i, gen_random_uuid() FROM generate_series(1, $USERS) i;
INSERT INTO users (id, username, email, password_hash, display_name, locale)
  SELECT b.id, 'u' || b.n || '_' || (SELECT a[1 + (b.n % 5000)] FROM bench_words),
         'u' || b.n || '@example.com', '!',
         initcap((SELECT a[1 + floor(5000 * power(random(), 2))::int] FROM bench_words WHERE b.n > 0)),
         (ARRAY['en', 'en', 'de', 'fr', 'es'])[1 + b.n % 5]
  FROM bench_users b;
-- Ten random friends each: the partner is drawn first, then both are looked up.
INSERT INTO friendships (user_a, user_b)
  SELECT DISTINCT LEAST(a.id, b.id), GREATEST(a.id, b.id)
  FROM (SELECT n, 1 + floor(random() * $USERS)::int AS m
        FROM bench_users, generate_series(1, 10)) p
  JOIN bench_users a ON a.n = p.n JOIN bench_users b ON b.n = p.m
  WHERE a.id <> b.id
  ON CONFLICT DO NOTHING;
CREATE TABLE bench_videos (n int PRIMARY KEY, id uuid);
INSERT INTO bench_videos SELECT i, gen_random_uuid() FROM generate_series(1, $VIDEOS) i;
INSERT INTO videos (id, owner_id, title, description, tags, category, visibility, status,
                    storage_key, original_filename, container, content_type, size_bytes, sha256,
                    duration_seconds, like_count, created_at)
  SELECT v.id, u.id,
         initcap((SELECT string_agg(a[1 + floor(5000 * power(random(), 2))::int], ' ')
                  FROM bench_words, generate_series(1, 2 + v.n % 4))),
         (SELECT string_agg(a[1 + floor(5000 * power(random(), 2))::int], ' ')
          FROM bench_words, generate_series(1, 10 + v.n % 20)),
         ARRAY['tag' || (v.n % 100), 'tag' || (v.n % 37)],
         'cat' || (v.n % 20),
         CASE WHEN v.n % 20 = 0 THEN 'private' WHEN v.n % 10 = 0 THEN 'friends' ELSE 'public' END,
         'ready', 'videos/' || v.n, 'v.mp4', 'mp4', 'video/mp4', 1000, 'x',
         30 + (v.n % 5400), v.n % 50, now() - make_interval(mins => v.n % 1000000)
  FROM bench_videos v JOIN bench_users u ON u.n = 1 + (v.n % $USERS);
SQL
$PG -c "TRUNCATE search_changes" -c "VACUUM ANALYZE"
t1=$(date +%s.%N)
echo "seeded in $(python3 -c "print(round($t1 - $t0, 1))") s"
fi
[ -n "${SEED_ONLY:-}" ] && exit 0

echo "== 1. full rebuild (search-reindex)"
for index in users videos; do
  t0=$(date +%s.%N)
  $BIN search-reindex --index $index
  t1=$(date +%s.%N)
  n=$($PG -At -c "SELECT count(*) FROM search_documents WHERE index_name = '$index'")
  python3 -c "d = $t1 - $t0; print(f'$index: $n documents in {d:.1f} s = {$n / d:,.0f} documents/s')"
done
$PG -c "VACUUM ANALYZE search_documents"

echo "== 2. the worker folding 50,000 changes"
OPS_BIND_ADDR=127.0.0.1:$OPS $BIN worker --queues search=1 >/tmp/wp-bench-search-worker.log 2>&1 &
PIDS+=($!)
sleep 2
t0=$(date +%s.%N)
$PG -c "UPDATE videos SET description = description || ' refreshed' WHERE id IN (SELECT id FROM bench_videos WHERE n % ($VIDEOS / 50000) = 0)"
while [ "$($PG -At -c 'SELECT count(*) FROM search_changes')" != 0 ]; do sleep 0.05; done
t1=$(date +%s.%N)
python3 -c "d = $t1 - $t0; print(f'50,000 changes folded in {d:.1f} s = {50000 / d:,.0f} changes/s (update statement included)')"

echo "== 3. lag under 500 changes/s for 60 s (pgbench -R 500)"
cat > /tmp/wp-bench-search-change.sql <<SQL
\set n random(1, $VIDEOS)
UPDATE videos SET description = 'changed ' || random() WHERE id = (SELECT id FROM bench_videos WHERE n = :n);
SQL
metrics() { curl -sf -H "Authorization: Bearer $OPS_TOKEN" "http://127.0.0.1:$OPS/metrics"; }
metrics | grep '^search_fold_lag_seconds' > /tmp/wp-bench-lag-before.txt || true
pgbench -h 127.0.0.1 -U postgres -n -c 4 -j 2 -R 500 -T 60 -f /tmp/wp-bench-search-change.sql $DB 2>&1 \
  | grep -E 'tps|latency average|number of transactions actually'
while [ "$($PG -At -c 'SELECT count(*) FROM search_changes')" != 0 ]; do sleep 0.05; done
metrics | grep '^search_fold_lag_seconds' > /tmp/wp-bench-lag-after.txt
python3 - <<'PY'
import re
def read(p):
    b = {}
    for line in open(p):
        m = re.match(r'search_fold_lag_seconds_bucket\{le="([^"]+)"\} (\S+)', line)
        if m: b[m.group(1)] = float(m.group(2))
    return b
before, after = read('/tmp/wp-bench-lag-before.txt'), read('/tmp/wp-bench-lag-after.txt')
buckets = sorted(((float('inf') if k == '+Inf' else float(k)), after[k] - before.get(k, 0)) for k in after)
total = buckets[-1][1]
for q in (0.5, 0.99):
    le = next(le for le, n in buckets if n >= q * total)
    print(f'lag p{int(q * 100)} <= {le * 1000:.0f} ms ({int(total)} batches; each counts its oldest change)')
PY

echo "== 4. queries (wrk, 8 connections, ${SECS}s each)"
$BIN api >/tmp/wp-bench-search-api.log 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.1; done
TOKEN=$(curl -sf -X POST "http://127.0.0.1:$PORT/api/auth/register/" -H 'Content-Type: application/json' \
  -d '{"username":"bench_searcher","email":"bench@example.com","password":"violet-harbor-tunnel-93"}' \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["access_token"])')
$PG -c "INSERT INTO friendships (user_a, user_b)
        SELECT LEAST(me.id, u.id), GREATEST(me.id, u.id)
        FROM users me, bench_users u WHERE me.username = 'bench_searcher' AND u.n <= 50
        ON CONFLICT DO NOTHING"
$PG -At -c "SELECT w FROM bench_vocab ORDER BY i LIMIT 2000" > /tmp/wp-bench-words.txt
cat > /tmp/wp-bench-search.lua <<'LUA'
local words = {}
for w in io.lines("/tmp/wp-bench-words.txt") do words[#words + 1] = w end
math.randomseed(42)
local mode = os.getenv("MODE")
request = function()
  local w = words[math.random(#words)]
  local path
  if mode == "suggest" then
    path = "/api/search/suggest/?q=" .. string.sub(w, 1, math.random(2, math.min(4, #w)))
  elseif mode == "all" then
    path = "/api/search/?q=" .. w
  else
    path = "/api/search/?type=videos&q=" .. w
  end
  return wrk.format("GET", path)
end
LUA
for mode in videos all suggest; do
  echo "-- $mode"
  MODE=$mode wrk -t2 -c8 -d"${SECS}s" --latency -s /tmp/wp-bench-search.lua \
    -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT" | grep -E 'Requests/sec|50%|90%|99%|Non-2xx'
done
echo "-- matches per query word (median, max)"
$PG -At -c "SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY n), max(n) FROM (
  SELECT (SELECT count(*) FROM search_documents d WHERE d.tsv @@ to_tsquery('simple', w)) AS n
  FROM (SELECT w FROM bench_vocab ORDER BY random() LIMIT 20) s) t"
