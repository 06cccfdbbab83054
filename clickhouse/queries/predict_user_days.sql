-- Each user's active days over the history, as days before the bound end (0: the
-- last day; distinct). Binds: last day, first day, last day.
SELECT toString(user_id) AS user,
       arraySort(groupUniqArray(toUInt16(toDate(?) - day))) AS days_ago
FROM user_daily
WHERE day >= toDate(?) AND day <= toDate(?)
GROUP BY user_id
