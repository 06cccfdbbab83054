#!/usr/bin/env bash
# Benchmarks of issue 4, against the release binary in its own process, driven by wrk:
#   1. GET /api/videos/{id}/comments/ (a page of 20 top-level comments, each with its
#      reply count and first 3 replies, authors embedded), 64 connections;
#   2. ranged downloads (1 MiB ranges at random offsets of a 256 MiB file), 16 connections;
#   3. one whole 256 MiB download with curl, against `dd` reading the same file.
# Needs PostgreSQL, Redis and ClickHouse up (deploy/dev/services.sh) and wrk, curl.
# Usage: deploy/bench/videos.sh [seconds per run, default 15]
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-15}
PORT=${BENCH_PORT:-8199}
DB=watch_party_bench_videos
export DATABASE_URL=postgres://postgres@127.0.0.1:5432/$DB
export REDIS_PREFIX=benchvideos BIND_ADDR=127.0.0.1:$PORT PUBLIC_URL=http://127.0.0.1:$PORT
export CLICKHOUSE_DATABASE=watch_party_bench STORAGE_DIR=${BENCH_STORAGE:-/tmp/wp-bench-storage}
export RATE_LIMIT_MULTIPLIER=1000000 JWT_SECRET=bench-secret-bench-secret-bench-secret RUST_LOG=warn
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
SQLX_OFFLINE=true cargo build --release --bin watch-party --quiet
BIN=target/release/watch-party
psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
$BIN migrate >/dev/null
$BIN api >/tmp/wp-bench-api.log 2>&1 &
API=$!
trap 'kill $API 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.1; done

TOKEN=$(curl -sf -X POST "http://127.0.0.1:$PORT/api/auth/register/" -H 'Content-Type: application/json' \
  -d '{"username":"bench_owner","email":"bench@example.com","password":"violet-harbor-tunnel-93"}' \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["access_token"])')
OWNER=$(psql -qAt -h 127.0.0.1 -U postgres -d $DB -c "SELECT id FROM users WHERE username = 'bench_owner'")
mkdir -p "$STORAGE_DIR/videos"
head -c $((256 * 1024 * 1024)) /dev/urandom > "$STORAGE_DIR/videos/bench.mp4"
VIDEO=$(psql -qAt -h 127.0.0.1 -U postgres -d $DB -c "
  INSERT INTO users (id, username, email, password_hash, display_name)
  SELECT gen_random_uuid(), 'commenter' || i, 'c' || i || '@example.com', '!', 'Commenter ' || i
  FROM generate_series(1, 50) i;
  INSERT INTO videos (id, owner_id, title, storage_key, original_filename, container, content_type,
                      size_bytes, sha256, status, allow_download)
  VALUES (gen_random_uuid(), '$OWNER', 'Bench', 'videos/bench.mp4', 'bench.mp4', 'mp4', 'video/mp4',
          $((256 * 1024 * 1024)), repeat('a', 64), 'ready', true)
  RETURNING id;" | tail -1)
psql -q -h 127.0.0.1 -U postgres -d $DB -c "
  WITH c AS (SELECT id FROM users WHERE username LIKE 'commenter%'),
  tops AS (
    INSERT INTO video_comments (id, video_id, user_id, content, created_at, reply_count, likes_count)
    SELECT gen_random_uuid(), '$VIDEO', (SELECT id FROM c OFFSET (i % 50) LIMIT 1),
           'Top-level comment number ' || i || ' with a few words in it',
           now() - make_interval(secs => i), 5, i % 7
    FROM generate_series(1, 500) i RETURNING id, created_at)
  INSERT INTO video_comments (id, video_id, user_id, parent_id, content, created_at)
  SELECT gen_random_uuid(), '$VIDEO', (SELECT id FROM c OFFSET (r % 50) LIMIT 1), tops.id,
         'A reply, number ' || r, tops.created_at + make_interval(secs => r)
  FROM tops, generate_series(1, 5) r;
  UPDATE videos SET comment_count = 3000, top_comment_count = 500 WHERE id = '$VIDEO';
  ANALYZE;"

echo "== GET /api/videos/{id}/comments/ (page of 20, 64 connections, ${SECS}s)"
wrk -t2 -c64 -d"${SECS}s" --latency -H "Authorization: Bearer $TOKEN" \
  "http://127.0.0.1:$PORT/api/videos/$VIDEO/comments/" | sed -n '1,20p'

cat > /tmp/wp-bench-range.lua <<'LUA'
math.randomseed(os.time())
request = function()
  local start = math.random(0, 255) * 1048576
  wrk.headers["Range"] = "bytes=" .. start .. "-" .. (start + 1048575)
  return wrk.format(nil)
end
LUA
echo "== ranged downloads, 1 MiB at random offsets (16 connections, ${SECS}s)"
wrk -t2 -c16 -d"${SECS}s" --latency -s /tmp/wp-bench-range.lua -H "Authorization: Bearer $TOKEN" \
  "http://127.0.0.1:$PORT/api/videos/$VIDEO/download/" | sed -n '1,20p'

echo "== whole 256 MiB download (curl) vs reading the file (dd), page cache warm"
dd if="$STORAGE_DIR/videos/bench.mp4" of=/dev/null bs=1M 2>&1 | tail -1
curl -s -o /dev/null -H "Authorization: Bearer $TOKEN" -w 'curl: %{size_download} bytes in %{time_total} s = %{speed_download} bytes/s\n' \
  "http://127.0.0.1:$PORT/api/videos/$VIDEO/download/"
rm -f "$STORAGE_DIR/videos/bench.mp4"
