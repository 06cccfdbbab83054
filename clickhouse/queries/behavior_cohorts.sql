-- Weekly cohorts (registration week) by weeks since registration: distinct users
-- active in that week (distinct, so the activity rows are not grouped first).
-- Binds: first day, last day (activity); first day, last day (cohorts).
SELECT toString(toMonday(reg_day)) AS cohort,
       toUInt32(toRelativeWeekNum(day) - toRelativeWeekNum(reg_day)) AS week,
       toUInt64(uniqExact(user_id)) AS active_users
FROM (
    SELECT day, user_id FROM user_daily
    WHERE day >= toDate(?) AND day <= toDate(?)
) AS a
ALL INNER JOIN (
    SELECT user_id, min(registered) AS reg_day FROM user_cohorts
    WHERE registered >= toDate(?) AND registered <= toDate(?)
    GROUP BY user_id
) AS r USING user_id
WHERE day >= reg_day
GROUP BY cohort, week
ORDER BY cohort, week
