-- Distinct viewers per hour over the history (for the capacity forecast).
-- Binds: first hour, end (exclusive).
SELECT toUInt32(hour) AS at,
       toUInt64(uniqMerge(users)) AS viewer_count
FROM video_hourly
WHERE event_type IN ('video.view_start', 'playback.progress')
  AND hour >= toDateTime(?) AND hour < toDateTime(?)
GROUP BY at
ORDER BY at
