-- Per event type over the range: all, in parties and alone (events, distinct users,
-- seconds watched). Binds: video, from, to.
SELECT event_type,
       toUInt64(countMerge(events)) AS event_count,
       toUInt64(uniqMerge(users)) AS user_count,
       sumMerge(watch_seconds) AS seconds_watched,
       toUInt64(countMergeIf(events, in_party = 1)) AS party_events,
       toUInt64(uniqMergeIf(users, in_party = 1)) AS party_users,
       sumMergeIf(watch_seconds, in_party = 1) AS party_watch_seconds,
       toUInt64(countMergeIf(events, in_party = 0)) AS solo_events,
       toUInt64(uniqMergeIf(users, in_party = 0)) AS solo_users,
       sumMergeIf(watch_seconds, in_party = 0) AS solo_watch_seconds
FROM video_hourly
WHERE video_id = ? AND hour >= toDateTime(?) AND hour < toDateTime(?)
GROUP BY event_type
ORDER BY event_type
