-- The last minutes: per event type, events and distinct users since the first bound,
-- and events in the last complete minute. Binds: the last minute's start, since.
SELECT event_type,
       toUInt64(countMerge(events)) AS event_count,
       toUInt64(uniqMerge(users)) AS user_count,
       toUInt64(countMergeIf(events, minute = toDateTime(?))) AS last_minute
FROM minute_activity
WHERE minute >= toDateTime(?)
GROUP BY event_type
ORDER BY event_type
