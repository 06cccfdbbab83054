-- Per day: active users, and of them those who registered that day (new).
-- Binds: first day, last day.
SELECT toString(day) AS date,
       toUInt64(count()) AS active_users,
       toUInt64(countIf(reg_day = day)) AS new_users
FROM (
    SELECT day, user_id FROM user_daily
    WHERE day >= toDate(?) AND day <= toDate(?)
    GROUP BY day, user_id
) AS a
ALL LEFT JOIN (
    SELECT user_id, min(registered) AS reg_day FROM user_cohorts GROUP BY user_id
) AS r USING user_id
GROUP BY day
ORDER BY day
