-- Retention by viewer (issue 16's latency target): per video, day, party flag and user,
-- the points (0..99, hundredths of the video) the user played through, as two 64-bit
-- masks (points 0..63 in `low`, 64..99 in `high`). A read ORs each viewer's masks over
-- the days asked and counts per point: exact distinct viewers, and a sum over the
-- video's viewers instead of merging one `uniq` state per day, party flag and point.
-- The masks of one progress event cover the points from `from` to `position`, as
-- `video_retention_mv` does. Every shift stays within 0..63, in the branch `if` throws
-- away too (ClickHouse evaluates both; some releases refuse a shift past 63).
-- `video_retention` and its view stay for this release (the release before reads them
-- during an upgrade: docs/operations.md, "Upgrades"); a later release drops them.
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
           bitShiftLeft(bitShiftRight(toUInt64(18446744073709551615), toUInt8(63 - (least(p1, 63) - least(p0, 63)))),
                        toUInt8(least(p0, 63))))))) AS low,
       groupBitOrState(toUInt64(if(p1 < 64, toUInt64(0), toUInt64(
           bitShiftLeft(bitShiftRight(toUInt64(18446744073709551615), toUInt8(63 - (greatest(p1, 64) - greatest(p0, 64)))),
                        toUInt8(greatest(p0, 64) - 64)))))) AS high
FROM events
WHERE event_type = 'playback.progress'
  AND video_id != toUUID('00000000-0000-0000-0000-000000000000')
  AND visitParamExtractFloat(properties, 'duration') > 0
GROUP BY day, video_id, in_party, user_id;

-- What was recorded before this migration, as far as the raw events go back (older
-- curves stay in `video_retention`). One pass; the grouping spills to disk past 1 GB.
INSERT INTO video_retention_viewers
WITH visitParamExtractFloat(properties, 'duration') AS d,
     toUInt8(least(99, floor(greatest(0, visitParamExtractFloat(properties, 'from')) / d * 100))) AS p0,
     toUInt8(greatest(p0, least(99, floor(greatest(0, visitParamExtractFloat(properties, 'position')) / d * 100)))) AS p1
SELECT toDate(occurred_at) AS day,
       video_id,
       toUInt8(party_id != toUUID('00000000-0000-0000-0000-000000000000')) AS in_party,
       user_id,
       groupBitOrState(toUInt64(if(p0 > 63, toUInt64(0), toUInt64(
           bitShiftLeft(bitShiftRight(toUInt64(18446744073709551615), toUInt8(63 - (least(p1, 63) - least(p0, 63)))),
                        toUInt8(least(p0, 63))))))) AS low,
       groupBitOrState(toUInt64(if(p1 < 64, toUInt64(0), toUInt64(
           bitShiftLeft(bitShiftRight(toUInt64(18446744073709551615), toUInt8(63 - (greatest(p1, 64) - greatest(p0, 64)))),
                        toUInt8(greatest(p0, 64) - 64)))))) AS high
FROM events
WHERE event_type = 'playback.progress'
  AND video_id != toUUID('00000000-0000-0000-0000-000000000000')
  AND visitParamExtractFloat(properties, 'duration') > 0
GROUP BY day, video_id, in_party, user_id
SETTINGS max_bytes_before_external_group_by = 1000000000;
