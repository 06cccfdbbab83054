-- Each viewer's points over the days asked (their masks OR-ed: points 0..63 in the
-- `_low` masks, 64..99 in `_high`), of all their views, of those in parties and of those
-- alone. The API counts the viewers per point from these (a pass over the viewers;
-- counting in SQL costs ten times as much on 18.16). Binds: video, first day, last day.
SELECT groupBitOrMerge(low) AS any_low,
       groupBitOrMerge(high) AS any_high,
       groupBitOrMergeIf(low, in_party = 1) AS party_low,
       groupBitOrMergeIf(high, in_party = 1) AS party_high,
       groupBitOrMergeIf(low, in_party = 0) AS solo_low,
       groupBitOrMergeIf(high, in_party = 0) AS solo_high
FROM video_retention_viewers
WHERE video_id = ? AND day >= toDate(?) AND day <= toDate(?)
GROUP BY user_id
