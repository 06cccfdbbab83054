-- Retention by viewer (issue 16's latency target): per video, day, party flag and user,
-- the points (0..99, hundredths of the video) the user played through, as two 64-bit
-- masks (points 0..63 in `low`, 64..99 in `high`). A read ORs each viewer's masks over
-- the days asked and counts per point: exact distinct viewers, and a sum over the
-- video's viewers instead of merging one `uniq` state per day, party flag and point.
-- The masks of one progress event cover the points from `from` to `position`, as
-- `video_retention_mv` did. That view stops here (each progress event made up to 100
-- rows of it); its table `video_retention` stays, read by nothing, with what it held.
CREATE TABLE IF NOT EXISTS video_retention_viewers (
    day      Date,
    video_id UUID,
    in_party UInt8,
    user_id  UUID,
    low      AggregateFunction(groupBitOr, UInt64),
    high     AggregateFunction(groupBitOr, UInt64)
) ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMM(day)
ORDER BY (video_id, day, in_party, user_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS video_retention_viewers_mv TO video_retention_viewers AS
WITH visitParamExtractFloat(properties, 'duration') AS d,
     toUInt8(least(99, floor(greatest(0, visitParamExtractFloat(properties, 'from')) / d * 100))) AS p0,
     toUInt8(greatest(p0, least(99, floor(greatest(0, visitParamExtractFloat(properties, 'position')) / d * 100)))) AS p1
SELECT toDate(occurred_at) AS day,
       video_id,
       toUInt8(party_id != toUUID('00000000-0000-0000-0000-000000000000')) AS in_party,
       user_id,
       groupBitOrState(toUInt64(if(p0 > 63, toUInt64(0), toUInt64(
           bitShiftLeft(if(least(p1, 63) - p0 >= 63, toUInt64(18446744073709551615),
                           toUInt64(bitShiftLeft(toUInt64(1), toUInt8(least(p1, 63) - p0 + 1)) - 1)), p0))))) AS low,
       groupBitOrState(toUInt64(if(p1 < 64, toUInt64(0), toUInt64(
           bitShiftLeft(toUInt64(bitShiftLeft(toUInt64(1), toUInt8(p1 - greatest(p0, 64) + 1)) - 1),
                        toUInt8(greatest(p0, 64) - 64)))))) AS high
FROM events
WHERE event_type = 'playback.progress'
  AND video_id != toUUID('00000000-0000-0000-0000-000000000000')
  AND visitParamExtractFloat(properties, 'duration') > 0
GROUP BY day, video_id, in_party, user_id;

-- What was recorded before this migration.
INSERT INTO video_retention_viewers
WITH visitParamExtractFloat(properties, 'duration') AS d,
     toUInt8(least(99, floor(greatest(0, visitParamExtractFloat(properties, 'from')) / d * 100))) AS p0,
     toUInt8(greatest(p0, least(99, floor(greatest(0, visitParamExtractFloat(properties, 'position')) / d * 100)))) AS p1
SELECT toDate(occurred_at) AS day,
       video_id,
       toUInt8(party_id != toUUID('00000000-0000-0000-0000-000000000000')) AS in_party,
       user_id,
       groupBitOrState(toUInt64(if(p0 > 63, toUInt64(0), toUInt64(
           bitShiftLeft(if(least(p1, 63) - p0 >= 63, toUInt64(18446744073709551615),
                           toUInt64(bitShiftLeft(toUInt64(1), toUInt8(least(p1, 63) - p0 + 1)) - 1)), p0))))) AS low,
       groupBitOrState(toUInt64(if(p1 < 64, toUInt64(0), toUInt64(
           bitShiftLeft(toUInt64(bitShiftLeft(toUInt64(1), toUInt8(p1 - greatest(p0, 64) + 1)) - 1),
                        toUInt8(greatest(p0, 64) - 64)))))) AS high
FROM events
WHERE event_type = 'playback.progress'
  AND video_id != toUUID('00000000-0000-0000-0000-000000000000')
  AND visitParamExtractFloat(properties, 'duration') > 0
GROUP BY day, video_id, in_party, user_id;

DROP TABLE IF EXISTS video_retention_mv;
