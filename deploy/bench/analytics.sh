#!/usr/bin/env bash
# Analytics benchmarks (issue 16), against the release binary in its own processes:
# 1. seeding: `watch-party seed-analytics` writes USERS synthetic users' last 30 days
#    into ClickHouse; events/s with every materialized view filling its rollup;
# 2. the endpoints: wrk on each analytics endpoint with a staff token (the most watched
#    video for the video's analytics), 4 connections: requests/s, p50, p99;
# 3. side by side: a video's totals (views, viewers, watch time, solo/party) from the
#    rollup, as the API reads them, and the same figures computed from the raw events,
#    5 runs each with clickhouse-client --time, median;
# 4. ingest: wrk posting batches of 500 playback events to POST /api/analytics/events/
#    with one analytics worker process: events/s accepted, then the lag until
#    ClickHouse holds every accepted event.
# Needs PostgreSQL, Redis and ClickHouse up (deploy/dev/services.sh), wrk, curl.
# Usage: deploy/bench/analytics.sh [users, default 20000] [seconds per wrk run, default 15]
set -euo pipefail
cd "$(dirname "$0")/../.."
USERS=${1:-20000}
SECS=${2:-15}
PORT=${BENCH_PORT:-8197}
DB=watch_party_bench_analytics
PG="psql -qAt -h 127.0.0.1 -U postgres -d $DB -v ON_ERROR_STOP=1"
CH="clickhouse-client --database $DB"
export DATABASE_URL=postgres://postgres@127.0.0.1:5432/$DB
export REDIS_PREFIX=benchanalytics BIND_ADDR=127.0.0.1:$PORT PUBLIC_URL=http://127.0.0.1:$PORT
export CLICKHOUSE_DATABASE=$DB STORAGE_DIR=/tmp/wp-bench-analytics EMAIL_FILE_DIR=/tmp/wp-bench-analytics/mail
export RATE_LIMIT_MULTIPLIER=1000000 JWT_SECRET=bench-secret-bench-secret-bench-secret RUST_LOG=warn
command -v wrk >/dev/null || { echo "wrk is needed (apt-get install wrk)" >&2; exit 1; }
BIN=${CARGO_TARGET_DIR:-target}/release/watch-party
SQLX_OFFLINE=true cargo build --release --bin watch-party --quiet
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true' EXIT
mkdir -p /tmp/wp-bench-analytics/mail

psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
clickhouse-client --query "DROP DATABASE IF EXISTS $DB"
redis-cli --scan --pattern "benchanalytics*" | xargs -r redis-cli del >/dev/null
$BIN migrate >/dev/null
$BIN api >/tmp/wp-bench-analytics-api.log 2>&1 & PIDS+=($!)
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.1; done
body=$(curl -sf -X POST "http://127.0.0.1:$PORT/api/auth/register/" -H 'content-type: application/json' \
  -d '{"username":"analyst","email":"analyst@example.com","password":"violet-harbor-tunnel-93"}')
read -r STAFF TOKEN < <(echo "$body" | python3 -c 'import json,sys; d=json.load(sys.stdin)["data"]; print(d["user"]["id"], d["access_token"])')
$BIN set-role --username analyst --role admin >/dev/null
$PG -c "INSERT INTO videos (id, owner_id, title, storage_key, original_filename, container, content_type,
                            size_bytes, sha256, status, visibility, duration_seconds, created_at)
        SELECT gen_random_uuid(), '$STAFF', 'Bench video ' || i, 'videos/b' || i, 'b.mp4', 'mp4', 'video/mp4',
               1, '', 'ready', 'public', 300 + (i * 37) % 1500, now() - make_interval(secs => i)
          FROM generate_series(1, 50) i"

echo "== 1. seeding $USERS users x 30 days"
$BIN seed-analytics --days 30 --users "$USERS" --videos 50 --seed 1 | tail -1
EVENTS=$($CH --query "SELECT count() FROM events")
echo "raw events: $EVENTS; rollup rows: $($CH --query "SELECT
  (SELECT count() FROM video_hourly) + (SELECT count() FROM video_retention_viewers) + (SELECT count() FROM video_heatmap)
  + (SELECT count() FROM minute_activity) + (SELECT count() FROM user_daily) + (SELECT count() FROM daily_activity)")"
VIDEO=$($CH --query "SELECT toString(video_id) FROM video_hourly WHERE event_type = 'video.view_start'
  GROUP BY video_id ORDER BY countMerge(events) DESC LIMIT 1")

echo "== 2. the endpoints (wrk, 4 connections, ${SECS}s each)"
for path in "/api/analytics/video/$VIDEO/analytics/" "/api/analytics/video/$VIDEO/analytics/?interval=hour&from=$(date -u -d '-7 days' +%F)" \
            "/api/analytics/user-behavior/" "/api/analytics/real-time/" "/api/analytics/predictive/"; do
  echo "-- GET $path"
  curl -sf -o /dev/null -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT$path" || { echo "failed"; exit 1; }
  wrk -t2 -c4 -d"${SECS}s" --latency -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT$path" |
    grep -E 'Requests/sec|50%|99%|Non-2xx|Socket errors'
done

echo "== 3. side by side: a video's totals from the rollup and from the raw events (5 runs, median s)"
# Whole hours, the rollup's grain, so both read the same events.
FROM=$(( $(date +%s) / 3600 * 3600 - 30 * 86400 )); TO=$(( $(date +%s) / 3600 * 3600 + 3600 ))
ROLLUP=$(python3 - "$VIDEO" "$FROM" "$TO" <<'PY'
import sys
sql = "\n".join(l for l in open("clickhouse/queries/video_totals.sql").read().splitlines() if not l.startswith("--"))
for v in [f"'{sys.argv[1]}'", sys.argv[2], sys.argv[3]]:
    sql = sql.replace("?", v, 1)
print(" ".join(sql.split()))
PY
)
RAW="SELECT event_type, count() AS event_count, uniq(user_id) AS user_count,
  sum(visitParamExtractFloat(properties, 'watched')) AS seconds_watched,
  countIf(party_id != toUUID('00000000-0000-0000-0000-000000000000')) AS party_events,
  uniqIf(user_id, party_id != toUUID('00000000-0000-0000-0000-000000000000')) AS party_users,
  sumIf(visitParamExtractFloat(properties, 'watched'), party_id != toUUID('00000000-0000-0000-0000-000000000000')) AS party_watch_seconds,
  countIf(party_id = toUUID('00000000-0000-0000-0000-000000000000')) AS solo_events,
  uniqIf(user_id, party_id = toUUID('00000000-0000-0000-0000-000000000000')) AS solo_users,
  sumIf(visitParamExtractFloat(properties, 'watched'), party_id = toUUID('00000000-0000-0000-0000-000000000000')) AS solo_watch_seconds
  FROM events WHERE video_id = '$VIDEO' AND occurred_at >= toDateTime($FROM) AND occurred_at < toDateTime($TO)
  GROUP BY event_type ORDER BY event_type"
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for name in rollup raw; do
  q=$ROLLUP; [ $name = raw ] && q=$RAW
  t=$(for _ in 1 2 3 4 5; do $CH --time --query "$q" 2>&1 >/dev/null | tail -1; done | median)
  echo "$name: $t s"
done
round() { awk '{for (i = 1; i <= NF; i++) if ($i ~ /\./) $i = sprintf("%.3f", $i); print}'; }
if [ "$($CH --query "$ROLLUP" | round | md5sum)" = "$($CH --query "$RAW" | round | md5sum)" ]; then
  echo "the same answer from both (to 3 decimals)"
else
  echo "the answers differ (uniq is an estimate; the rollup merges per-hour states):"
  $CH --query "$ROLLUP" | head -8; echo; $CH --query "$RAW" | head -8
fi

echo "== 3b. that video's retention, 30 days: each viewer's masks (the API's read; it counts per point itself) vs a uniq state per point (the first design) (5 runs, median s)"
# The first design's view is gone since migration 4: its table is rebuilt here for
# this video from the raw events with the view's SELECT.
[ "$($CH --query "EXISTS TABLE video_retention_mv")" = 1 ] || $CH --query "INSERT INTO video_retention
  WITH visitParamExtractFloat(properties, 'duration') AS d,
       toUInt8(least(99, floor(greatest(0, visitParamExtractFloat(properties, 'from')) / d * 100))) AS p0,
       toUInt8(least(99, floor(greatest(0, visitParamExtractFloat(properties, 'position')) / d * 100))) AS p1
  SELECT toDate(occurred_at) AS day, video_id,
         toUInt8(party_id != toUUID('00000000-0000-0000-0000-000000000000')) AS in_party,
         arrayJoin(arrayMap(i -> toUInt8(p0 + i), range(toUInt64(greatest(p1, p0) - p0 + 1)))) AS point,
         uniqState(user_id) AS viewers
  FROM events WHERE event_type = 'playback.progress' AND video_id = '$VIDEO'
    AND visitParamExtractFloat(properties, 'duration') > 0
  GROUP BY day, video_id, in_party, point"
D0=$(date -u -d '-30 days' +%F); D1=$(date -u +%F)
MASKS=$(python3 - "$VIDEO" "$D0" "$D1" <<'PY'
import sys
sql = "\n".join(l for l in open("clickhouse/queries/video_retention.sql").read().splitlines() if not l.startswith("--"))
for v in sys.argv[1:]:
    sql = sql.replace("?", f"'{v}'", 1)
print(" ".join(sql.split()))
PY
)
STATES="SELECT point, toUInt64(uniqMerge(viewers)) AS viewer_count,
  toUInt64(uniqMergeIf(viewers, in_party = 1)) AS party_viewers, toUInt64(uniqMergeIf(viewers, in_party = 0)) AS solo_viewers
  FROM (SELECT point, in_party, viewers FROM video_retention WHERE video_id = '$VIDEO' AND day >= toDate('$D0') AND day <= toDate('$D1')
        UNION ALL
        SELECT toUInt8(100) AS point, in_party, viewers FROM video_retention WHERE video_id = '$VIDEO' AND day >= toDate('$D0') AND day <= toDate('$D1'))
  GROUP BY point ORDER BY point"
for name in masks states; do
  q=$MASKS; [ $name = states ] && q=$STATES
  t=$(for _ in 1 2 3 4 5; do $CH --time --query "$q" 2>&1 >/dev/null | tail -1; done | median)
  echo "$name: $t s"
done
$CH --query "$MASKS" >/tmp/wp-bench-masks.tsv
$CH --query "$STATES" >/tmp/wp-bench-states.tsv
python3 - <<'PY'
viewers = [[int(x) for x in l.split()] for l in open("/tmp/wp-bench-masks.tsv")]
states = {int(l.split()[0]): [int(x) for x in l.split()[1:]] for l in open("/tmp/wp-bench-states.tsv")}
worst = 0.0
for p in range(101):
    for i, k in enumerate((0, 2, 4)):
        if p == 100:
            n = sum(1 for v in viewers if v[k] or v[k + 1])
        else:
            m, b = (k, p) if p < 64 else (k + 1, p - 64)
            n = sum(1 for v in viewers if v[m] >> b & 1)
        s = states.get(p, [0, 0, 0])[i]
        worst = max(worst, abs(n - s) / n if n else 0)
print(f"viewers: {len(viewers)}; largest difference at a point: {worst:.2%} (uniq is an estimate; the masks are exact)")
PY

echo "== 4. ingest: batches of 500 events through the API and one analytics worker"
$BIN worker --queues analytics=500 >/tmp/wp-bench-analytics-worker.log 2>&1 & PIDS+=($!)
BEFORE=$($CH --query "SELECT count() FROM events")
cat >/tmp/wp-bench-analytics.lua <<LUA
local video = "$VIDEO"
local hex = "0123456789abcdef"
local function uuid()
  local t = {}
  for i = 1, 32 do local r = math.random(16); t[i] = hex:sub(r, r) end
  local s = table.concat(t)
  return s:sub(1,8) .. "-" .. s:sub(9,12) .. "-4" .. s:sub(14,16) .. "-a" .. s:sub(18,20) .. "-" .. s:sub(21,32)
end
local now = os.date("!%Y-%m-%dT%H:%M:%SZ")
init = function(args)
  -- Each thread its own ids (wrk's threads would otherwise draw the same sequence).
  math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)"), 16) % 1000003)
end
request = function()
  local ev = {}
  for i = 1, 500 do
    local from = (i % 100) * 10
    ev[i] = '{"event_id":"' .. uuid() .. '","type":"progress","video_id":"' .. video ..
      '","occurred_at":"' .. now .. '","from":' .. from .. ',"position":' .. (from + 10) .. '}'
  end
  return wrk.format("POST", "/api/analytics/events/", {
    ["Authorization"] = "Bearer $TOKEN", ["Content-Type"] = "application/json" },
    '{"events":[' .. table.concat(ev, ",") .. ']}')
end
LUA
OUT=$(wrk -t2 -c8 -d"${SECS}s" --latency -s /tmp/wp-bench-analytics.lua "http://127.0.0.1:$PORT")
echo "$OUT" | grep -E 'Requests/sec|50%|99%|Non-2xx|Socket errors|requests in'
ENDED=$(date +%s.%N)
REQS=$(echo "$OUT" | awk '/requests in/ {print $1}')
BAD=$(echo "$OUT" | awk '/Non-2xx/ {print $4}'); BAD=${BAD:-0}
ACCEPTED=$(( (REQS - BAD) * 500 ))
echo "accepted: $ACCEPTED events, $(python3 -c "print(round($ACCEPTED / $SECS))") events/s"
while :; do
  NOW_COUNT=$(( $($CH --query "SELECT count() FROM events") - BEFORE ))
  [ "$NOW_COUNT" -ge "$ACCEPTED" ] && break
  sleep 0.5
  if python3 -c "import sys,time; sys.exit(0 if time.time() - $ENDED > 600 else 1)"; then
    echo "not all in ClickHouse after 600 s: $NOW_COUNT of $ACCEPTED"; exit 1
  fi
done
echo "in ClickHouse $(python3 -c "import time; print(round(time.time() - $ENDED, 1))") s after the last request ($NOW_COUNT events)"
