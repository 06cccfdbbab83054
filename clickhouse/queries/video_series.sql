-- Per interval and event type: events, distinct users, seconds watched.
-- Binds: video, from, to.
SELECT toUInt32({bucket}) AS at,
       event_type,
       toUInt64(countMerge(events)) AS event_count,
       toUInt64(uniqMerge(users)) AS user_count,
       sumMerge(watch_seconds) AS seconds_watched
FROM video_hourly
WHERE video_id = ? AND hour >= toDateTime(?) AND hour < toDateTime(?)
GROUP BY at, event_type
ORDER BY at, event_type
