-- Per day: active users, and of them those who registered that day (new). Distinct
-- users counted per day (a user's rows of one day not yet summed count once), so the
-- rows are not grouped first. Binds: first day, last day.
SELECT toString(day) AS date,
       toUInt64(uniqExact(user_id)) AS active_users,
       toUInt64(uniqExactIf(user_id, reg_day = day)) AS new_users
FROM (
    SELECT day, user_id FROM user_daily
    WHERE day >= toDate(?) AND day <= toDate(?)
) AS a
ALL LEFT JOIN (
    SELECT user_id, min(registered) AS reg_day FROM user_cohorts GROUP BY user_id
) AS r USING user_id
GROUP BY day
ORDER BY day
