#!/usr/bin/env bash
# `GET /api/mobile/home/` benchmark (issue 15: under 50 ms p99 on seeded data), against
# the release binary in its own process, driven by wrk with 50 signed-in users at random.
# Seeded in SQL: 100,000 users with 10 friends each, 2,000 groups of 50 members,
# 5,000 active parties (a fifth of them group parties; 1,000 with sockets open, written
# into Redis as a realtime node writes presence), 20,000 events over the next 30 days
# with answers and invitations, watch progress (20 videos per bench user), pending
# friend requests; the 50 bench users get friends, groups, parties and events like the
# rest. Needs PostgreSQL, Redis and ClickHouse up (deploy/dev/services.sh), wrk, curl.
# Usage: deploy/bench/mobile-home.sh [seconds per wrk run, default 20] (BENCH_REUSE=1)
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-20}
USERS=100000
PORT=${BENCH_PORT:-8196}
DB=watch_party_bench_home
PG="psql -q -h 127.0.0.1 -U postgres -d $DB -v ON_ERROR_STOP=1"
export DATABASE_URL=postgres://postgres@127.0.0.1:5432/$DB
export REDIS_PREFIX=benchhome BIND_ADDR=127.0.0.1:$PORT PUBLIC_URL=http://127.0.0.1:$PORT
export CLICKHOUSE_DATABASE=watch_party_bench STORAGE_DIR=/tmp/wp-bench-home EMAIL_FILE_DIR=/tmp/wp-bench-home/mail
export RATE_LIMIT_MULTIPLIER=1000000 JWT_SECRET=bench-secret-bench-secret-bench-secret RUST_LOG=warn
command -v wrk >/dev/null || { echo "wrk is needed (apt-get install wrk)" >&2; exit 1; }
BIN=${CARGO_TARGET_DIR:-target}/release/watch-party
SQLX_OFFLINE=true cargo build --release --bin watch-party --quiet
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true' EXIT
mkdir -p /tmp/wp-bench-home/mail

$BIN api >/tmp/wp-bench-home-api.log 2>&1 &
API=$!
seeded=$(psql -qAt -h 127.0.0.1 -U postgres -d $DB -c "SELECT count(*) FROM bench_tokens" 2>/dev/null || echo 0)
if [ -n "${BENCH_REUSE:-}" ] && [ "$seeded" = 50 ]; then
  echo "== reusing $DB"
  kill $API; wait $API 2>/dev/null || true
  $BIN migrate >/dev/null
else
kill $API; wait $API 2>/dev/null || true
psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
$BIN migrate >/dev/null
$BIN api >/tmp/wp-bench-home-api.log 2>&1 & API=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.1; done
echo "== registering 50 bench users"
$PG -c "CREATE TABLE bench_tokens (n int PRIMARY KEY, id uuid, token text)"
for n in $(seq 1 50); do
  body=$(curl -sf -X POST "http://127.0.0.1:$PORT/api/auth/register/" -H 'content-type: application/json' \
    -d "{\"username\":\"homebench$n\",\"email\":\"homebench$n@example.com\",\"password\":\"violet-harbor-tunnel-93\"}")
  read -r id token < <(echo "$body" | python3 -c 'import json,sys; d=json.load(sys.stdin)["data"]; print(d["user"]["id"], d["access_token"])')
  $PG -c "INSERT INTO bench_tokens VALUES ($n, '$id', '$token')"
done
kill $API; wait $API 2>/dev/null || true
echo "== seeding"
t0=$(date +%s.%N)
$PG <<SQL
SET session_replication_role = replica; -- no search triggers while seeding
SELECT setseed(0.42);
CREATE TABLE bench_users (n int PRIMARY KEY, id uuid);
INSERT INTO bench_users SELECT i, gen_random_uuid() FROM generate_series(1, $USERS) i;
INSERT INTO users (id, username, email, password_hash, display_name)
  SELECT id, 'hb' || n, 'hb' || n || '@example.com', '!', 'Home Bench ' || n FROM bench_users;
-- The bench users are users 1..50 of the graph.
UPDATE bench_users b SET id = t.id FROM bench_tokens t WHERE b.n = t.n;
DELETE FROM users WHERE username IN (SELECT 'hb' || n FROM generate_series(1, 50) n);
INSERT INTO friendships (user_a, user_b)
  SELECT DISTINCT LEAST(a.id, b.id), GREATEST(a.id, b.id)
  FROM (SELECT n, 1 + floor(random() * $USERS)::int AS m FROM bench_users, generate_series(1, 10)) p
  JOIN bench_users a ON a.n = p.n JOIN bench_users b ON b.n = p.m
  WHERE a.id <> b.id ON CONFLICT DO NOTHING;
CREATE TABLE bench_groups (n int PRIMARY KEY, id uuid);
INSERT INTO bench_groups SELECT i, gen_random_uuid() FROM generate_series(1, 2000) i;
INSERT INTO social_groups (id, name, admin_id, member_count)
  SELECT g.id, 'Group ' || g.n, u.id, 50 FROM bench_groups g JOIN bench_users u ON u.n = 1 + (g.n * 37) % $USERS;
INSERT INTO group_members (group_id, user_id)
  SELECT DISTINCT g.id, u.id FROM bench_groups g, generate_series(1, 50) k
  JOIN bench_users u ON u.n = 1 + floor(random() * $USERS)::int ON CONFLICT DO NOTHING;
INSERT INTO group_members (group_id, user_id)
  SELECT g.id, b.id FROM bench_users b JOIN bench_groups g ON g.n IN (1 + b.n * 7 % 2000, 1 + b.n * 13 % 2000)
  WHERE b.n <= 50 ON CONFLICT DO NOTHING;
CREATE TABLE bench_parties (n int PRIMARY KEY, id uuid, host uuid);
INSERT INTO bench_parties SELECT i, gen_random_uuid(), u.id
  FROM generate_series(1, 5000) i JOIN bench_users u ON u.n = 51 + (i * 7919) % ($USERS - 50);
-- Each bench user is a friend of 20 party hosts (the rest of the graph is random).
INSERT INTO friendships (user_a, user_b)
  SELECT DISTINCT LEAST(b.id, p.host), GREATEST(b.id, p.host)
    FROM bench_users b JOIN bench_parties p ON p.n % 250 = b.n % 250
   WHERE b.n <= 50 ON CONFLICT DO NOTHING;
INSERT INTO parties (id, host_id, title, external_url, invite_code, group_id, updated_at)
  SELECT p.id, p.host, 'Party ' || p.n, 'https://example.com/v.mp4', 'HB' || p.n,
         CASE WHEN p.n % 5 = 0 THEN (SELECT id FROM bench_groups WHERE n = 1 + p.n % 2000) END,
         now() - make_interval(secs => p.n)
    FROM bench_parties p;
INSERT INTO party_members (party_id, user_id, role) SELECT id, host, 'host' FROM bench_parties;
CREATE TABLE bench_events (n int PRIMARY KEY, id uuid);
INSERT INTO bench_events SELECT i, gen_random_uuid() FROM generate_series(1, 20000) i;
INSERT INTO events (id, organizer_id, title, start_time, end_time, group_id)
  SELECT e.id, u.id, 'Event ' || e.n, now() + make_interval(mins => e.n * 2),
         now() + make_interval(mins => e.n * 2 + 120),
         CASE WHEN e.n % 4 = 0 THEN (SELECT id FROM bench_groups WHERE n = 1 + e.n % 2000) END
    FROM bench_events e JOIN bench_users u ON u.n = 1 + (e.n * 31) % $USERS;
INSERT INTO event_attendees (event_id, user_id, status)
  SELECT DISTINCT e.id, u.id, 'going' FROM bench_events e, generate_series(1, 5) k
  JOIN bench_users u ON u.n = 1 + floor(random() * $USERS)::int ON CONFLICT DO NOTHING;
INSERT INTO event_invitations (event_id, user_id, invited_by)
  SELECT e.id, b.id, b.id FROM bench_users b JOIN bench_events e ON e.n IN (b.n * 3, b.n * 11, b.n * 101)
  WHERE b.n <= 50 ON CONFLICT DO NOTHING;
INSERT INTO videos (id, owner_id, title, storage_key, original_filename, container, content_type,
                    size_bytes, sha256, status, visibility, duration_seconds)
  SELECT gen_random_uuid(), (SELECT id FROM bench_users WHERE n = 1 + i * 17 % $USERS), 'Video ' || i,
         'videos/' || i, 'v.mp4', 'mp4', 'video/mp4', 1, '', 'ready',
         CASE WHEN i % 10 = 0 THEN 'friends' ELSE 'public' END, 600
    FROM generate_series(1, 20000) i;
INSERT INTO watch_progress (user_id, video_id, position_seconds, updated_at)
  SELECT b.id, v.id, 30 + random() * 500, now() - make_interval(mins => v.r::int)
    FROM bench_users b, LATERAL (SELECT id, row_number() OVER () AS r FROM videos ORDER BY random() LIMIT 20) v
   WHERE b.n <= 50;
INSERT INTO friend_requests (id, from_user, to_user)
  SELECT gen_random_uuid(), u.id, b.id FROM bench_users b JOIN bench_users u ON u.n = 60000 + b.n WHERE b.n <= 50;
ANALYZE;
SQL
echo "   seeded in $(python3 -c "print(round($(date +%s.%N) - $t0, 1))") s"
fi

# 1,000 parties with sockets, as a node writes presence (one entry per socket), and
# a live node key so the entries count.
redis-cli --scan --pattern "benchhome:*" | xargs -r redis-cli del >/dev/null
$PG -At -c "SELECT id FROM parties WHERE status = 'active' ORDER BY id LIMIT 1000" | while read -r p; do
  echo "HSET benchhome:party:$p:presence c1 '{\"node\":\"bench\"}' c2 '{\"node\":\"bench\"}'"
done | redis-cli >/dev/null
redis-cli SET benchhome:node:bench '{"node":"bench","sockets":2000,"parties":1000,"started_at":"2026-12-03T00:00:00Z","seen_at":"2026-12-03T00:00:00Z"}' >/dev/null

$BIN api >/tmp/wp-bench-home-api.log 2>&1 & PIDS+=($!)
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.1; done
$PG -At -c "SELECT token FROM bench_tokens ORDER BY n" > /tmp/wp-bench-home-tokens.txt
echo "== one answer, for the record"
curl -sf -H "Authorization: Bearer $(head -1 /tmp/wp-bench-home-tokens.txt)" "http://127.0.0.1:$PORT/api/mobile/home/" |
  python3 -c 'import json,sys; d=json.load(sys.stdin)["data"]; print("   live_parties", len(d["live_parties"]), "upcoming_events", len(d["upcoming_events"]), "continue_watching", len(d["continue_watching"]), "unread", d["unread"])'
cat > /tmp/wp-bench-home.lua <<'LUA'
local tokens = {}
for t in io.lines("/tmp/wp-bench-home-tokens.txt") do tokens[#tokens + 1] = t end
math.randomseed(7)
request = function()
  return wrk.format("GET", "/api/mobile/home/", { ["Authorization"] = "Bearer " .. tokens[math.random(#tokens)] })
end
LUA
for c in 8 32; do
  echo "== wrk, $c connections, ${SECS}s"
  wrk -t2 -c$c -d"${SECS}s" --latency -s /tmp/wp-bench-home.lua "http://127.0.0.1:$PORT" |
    grep -E 'Requests/sec|50%|90%|99%|Non-2xx|Socket errors'
done
