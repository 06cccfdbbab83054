-- Per event type over the days: events and distinct users (features used).
-- Binds: first day, last day.
SELECT event_type,
       toUInt64(countMerge(events)) AS event_count,
       toUInt64(uniqMerge(users)) AS user_count
FROM daily_activity
WHERE day >= toDate(?) AND day <= toDate(?)
GROUP BY event_type
ORDER BY user_count DESC, event_type
