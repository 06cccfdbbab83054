-- Views by traffic source, platform and country. Binds: video, from, to (three times).
SELECT 'source' AS dimension, source AS value, toUInt64(countMerge(events)) AS views
FROM video_hourly
WHERE video_id = ? AND hour >= toDateTime(?) AND hour < toDateTime(?) AND event_type = 'video.view_start'
GROUP BY value
UNION ALL
SELECT 'platform' AS dimension, platform AS value, toUInt64(countMerge(events)) AS views
FROM video_hourly
WHERE video_id = ? AND hour >= toDateTime(?) AND hour < toDateTime(?) AND event_type = 'video.view_start'
GROUP BY value
UNION ALL
SELECT 'country' AS dimension, country AS value, toUInt64(countMerge(events)) AS views
FROM video_hourly
WHERE video_id = ? AND hour >= toDateTime(?) AND hour < toDateTime(?) AND event_type = 'video.view_start'
GROUP BY value
