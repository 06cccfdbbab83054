-- The videos most watched since the bound: distinct viewers, then events.
SELECT toString(video_id) AS video,
       toUInt64(uniqMerge(users)) AS viewer_count,
       toUInt64(countMerge(events)) AS event_count
FROM minute_activity
WHERE minute >= toDateTime(?) AND event_type IN ('video.view_start', 'playback.progress')
  AND video_id != toUUID('00000000-0000-0000-0000-000000000000')
GROUP BY video_id
ORDER BY viewer_count DESC, event_count DESC
LIMIT 10
