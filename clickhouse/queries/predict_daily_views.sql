-- Views per day and video over the history (for the views forecast).
-- Binds: first hour, end (exclusive).
SELECT toString(toDate(hour)) AS date,
       toString(video_id) AS video,
       toUInt64(countMerge(events)) AS views
FROM video_hourly
WHERE event_type = 'video.view_start' AND hour >= toDateTime(?) AND hour < toDateTime(?)
GROUP BY date, video
ORDER BY date, video
