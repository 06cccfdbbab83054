-- Rollups of the video and playback events, filled by materialized views as the
-- analytics worker inserts into `events`, so the analytics endpoints and dashboards read
-- these small tables, never the raw events (docs/analytics.md).
--
-- The events (properties set by the API, never taken raw from a client):
--   video.view_start   a view began: position, source, platform, country
--   playback.progress  a span played since the last report: from, position (its end),
--                      duration (the video's), watched (seconds of playback)
--   playback.seek      from -> position
--   party.reaction     at position (the party's playback position)
--   video.comment, video.like, video.dislike, video.download: counted per hour
-- A zero UUID is "none" (no party, anonymous).
--
-- Written for ClickHouse 18.16 and current releases alike: range() with one argument,
-- visitParam* rather than JSONExtract*, no TTL clause (old partitions are dropped by the
-- scheduler's prune-analytics instead).

-- Per video and hour: each event type counted by source, platform, country and whether
-- watched in a party; the distinct users; the seconds watched.
CREATE TABLE IF NOT EXISTS video_hourly (
    hour          DateTime,
    video_id      UUID,
    event_type    String,
    source        String,
    platform      String,
    country       String,
    in_party      UInt8,
    events        AggregateFunction(count),
    users         AggregateFunction(uniq, UUID),
    watch_seconds AggregateFunction(sum, Float64)
) ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMM(hour)
ORDER BY (video_id, hour, event_type, source, platform, country, in_party);

CREATE MATERIALIZED VIEW IF NOT EXISTS video_hourly_mv TO video_hourly AS
SELECT toStartOfHour(occurred_at) AS hour,
       video_id,
       event_type,
       visitParamExtractString(properties, 'source') AS source,
       visitParamExtractString(properties, 'platform') AS platform,
       visitParamExtractString(properties, 'country') AS country,
       toUInt8(party_id != toUUID('00000000-0000-0000-0000-000000000000')) AS in_party,
       countState() AS events,
       uniqState(user_id) AS users,
       sumState(visitParamExtractFloat(properties, 'watched')) AS watch_seconds
FROM events
WHERE video_id != toUUID('00000000-0000-0000-0000-000000000000')
GROUP BY hour, video_id, event_type, source, platform, country, in_party;

-- Retention: per video, day and point (0..99, hundredths of the video), the distinct
-- users who played through that point, alone or in a party.
CREATE TABLE IF NOT EXISTS video_retention (
    day      Date,
    video_id UUID,
    in_party UInt8,
    point    UInt8,
    viewers  AggregateFunction(uniq, UUID)
) ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMM(day)
ORDER BY (video_id, day, in_party, point);

CREATE MATERIALIZED VIEW IF NOT EXISTS video_retention_mv TO video_retention AS
WITH visitParamExtractFloat(properties, 'duration') AS d,
     toUInt8(least(99, floor(greatest(0, visitParamExtractFloat(properties, 'from')) / d * 100))) AS p0,
     toUInt8(least(99, floor(greatest(0, visitParamExtractFloat(properties, 'position')) / d * 100))) AS p1
SELECT toDate(occurred_at) AS day,
       video_id,
       toUInt8(party_id != toUUID('00000000-0000-0000-0000-000000000000')) AS in_party,
       arrayJoin(arrayMap(i -> toUInt8(p0 + i), range(toUInt64(greatest(p1, p0) - p0 + 1)))) AS point,
       uniqState(user_id) AS viewers
FROM events
WHERE event_type = 'playback.progress'
  AND video_id != toUUID('00000000-0000-0000-0000-000000000000')
  AND visitParamExtractFloat(properties, 'duration') > 0
GROUP BY day, video_id, in_party, point;

-- The engagement heatmap: per video, day, second of the video and kind (seek: a seek
-- landed there; rewatch: a backward seek replayed it, at most 10 minutes back;
-- reaction), how many.
CREATE TABLE IF NOT EXISTS video_heatmap (
    day      Date,
    video_id UUID,
    kind     String,
    second   UInt32,
    n        UInt64
) ENGINE = SummingMergeTree()
PARTITION BY toYYYYMM(day)
ORDER BY (video_id, day, kind, second);

CREATE MATERIALIZED VIEW IF NOT EXISTS video_heatmap_seek_mv TO video_heatmap AS
SELECT toDate(occurred_at) AS day, video_id, 'seek' AS kind,
       toUInt32(greatest(0, visitParamExtractFloat(properties, 'position'))) AS second,
       toUInt64(count()) AS n
FROM events
WHERE event_type = 'playback.seek'
  AND video_id != toUUID('00000000-0000-0000-0000-000000000000')
GROUP BY day, video_id, kind, second;

CREATE MATERIALIZED VIEW IF NOT EXISTS video_heatmap_rewatch_mv TO video_heatmap AS
WITH toUInt32(greatest(0, visitParamExtractFloat(properties, 'position'))) AS s1,
     toUInt32(greatest(0, visitParamExtractFloat(properties, 'from'))) AS s0
SELECT toDate(occurred_at) AS day,
       video_id,
       'rewatch' AS kind,
       arrayJoin(arrayMap(i -> toUInt32(s1 + i), range(toUInt64(least(600, s0 - s1))))) AS second,
       toUInt64(count()) AS n
FROM events
WHERE event_type = 'playback.seek'
  AND video_id != toUUID('00000000-0000-0000-0000-000000000000')
  AND visitParamExtractFloat(properties, 'from') > visitParamExtractFloat(properties, 'position')
GROUP BY day, video_id, kind, second;

CREATE MATERIALIZED VIEW IF NOT EXISTS video_heatmap_reaction_mv TO video_heatmap AS
SELECT toDate(occurred_at) AS day, video_id, 'reaction' AS kind,
       toUInt32(greatest(0, visitParamExtractFloat(properties, 'position'))) AS second,
       toUInt64(count()) AS n
FROM events
WHERE event_type = 'party.reaction'
  AND video_id != toUUID('00000000-0000-0000-0000-000000000000')
GROUP BY day, video_id, kind, second;

-- The last minutes, for the real-time view: per minute, event type and video (zero for
-- events of no video), how many and by whom. Partitioned by day: prune-analytics drops
-- days older than two.
CREATE TABLE IF NOT EXISTS minute_activity (
    minute     DateTime,
    event_type String,
    video_id   UUID,
    events     AggregateFunction(count),
    users      AggregateFunction(uniq, UUID)
) ENGINE = AggregatingMergeTree()
PARTITION BY toDate(minute)
ORDER BY (minute, event_type, video_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS minute_activity_mv TO minute_activity AS
SELECT toStartOfMinute(occurred_at) AS minute, event_type, video_id,
       countState() AS events, uniqState(user_id) AS users
FROM events
GROUP BY minute, event_type, video_id;
