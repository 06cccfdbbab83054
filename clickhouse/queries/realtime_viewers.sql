-- Distinct users watching (a view started or progress reported) since the bound.
SELECT toUInt64(uniqMerge(users)) AS viewer_count
FROM minute_activity
WHERE minute >= toDateTime(?) AND event_type IN ('video.view_start', 'playback.progress')
