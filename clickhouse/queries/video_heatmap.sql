-- Per second of the video: rewatches, seeks landed, reactions (non-zero seconds only).
-- Binds: video, first day, last day.
SELECT second,
       toUInt64(sumIf(n, kind = 'rewatch')) AS rewatches,
       toUInt64(sumIf(n, kind = 'seek')) AS seeks,
       toUInt64(sumIf(n, kind = 'reaction')) AS reactions
FROM video_heatmap
WHERE video_id = ? AND day >= toDate(?) AND day <= toDate(?)
GROUP BY second
ORDER BY second
LIMIT 86400
