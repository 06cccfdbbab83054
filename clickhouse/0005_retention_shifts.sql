-- Migration 4's view built its masks with shifts past 63 in the branch `if` throws
-- away (ClickHouse evaluates both branches; some releases, ~24.7-24.10, refuse such a
-- shift, which would fail every insert of a progress event there). Its replacement
-- gives the same masks with every shift within 0..63. It is created before the old
-- view goes: an event written in between feeds both, and OR-ing a mask twice changes
-- nothing.
CREATE MATERIALIZED VIEW IF NOT EXISTS video_retention_viewers_shifts_mv TO video_retention_viewers AS
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

DROP TABLE IF EXISTS video_retention_viewers_mv;
