-- Distinct viewers per point (0..99; 100: anyone who played any point), all, in
-- parties and alone. Binds: video, first day, last day.
SELECT point,
       toUInt64(uniqMerge(viewers)) AS viewer_count,
       toUInt64(uniqMergeIf(viewers, in_party = 1)) AS party_viewers,
       toUInt64(uniqMergeIf(viewers, in_party = 0)) AS solo_viewers
FROM (
    SELECT point, in_party, viewers FROM video_retention
    WHERE video_id = ? AND day >= toDate(?) AND day <= toDate(?)
    UNION ALL
    SELECT toUInt8(100) AS point, in_party, viewers FROM video_retention
    WHERE video_id = ? AND day >= toDate(?) AND day <= toDate(?)
)
GROUP BY point
ORDER BY point
