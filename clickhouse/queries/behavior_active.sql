-- Daily, weekly and monthly active users at the last day (users who caused any event
-- that day, in the 7 days, in the 30 days up to it). Binds: last day (four times).
SELECT toUInt64(uniqExactIf(user_id, day = toDate(?))) AS dau,
       toUInt64(uniqExactIf(user_id, day > toDate(?) - 7)) AS wau,
       toUInt64(uniqExact(user_id)) AS mau
FROM user_daily
WHERE day > toDate(?) - 30 AND day <= toDate(?)
