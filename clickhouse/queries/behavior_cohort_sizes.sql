-- Users registered per week (Monday). Binds: first day, last day.
SELECT toString(toMonday(registered)) AS cohort,
       toUInt64(uniqExact(user_id)) AS cohort_users
FROM user_cohorts
WHERE registered >= toDate(?) AND registered <= toDate(?)
GROUP BY cohort
ORDER BY cohort
