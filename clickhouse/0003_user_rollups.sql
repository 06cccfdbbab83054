-- Rollups of who is active, for the user-behaviour analytics (docs/analytics.md):
-- per day and user the events they caused; per day and event type the events and
-- distinct users (features used); each user's registration day, from the
-- `user.registered` event the API records (cohorts, new vs returning).
-- ClickHouse 18.16 and current releases alike (see 0002).

CREATE TABLE IF NOT EXISTS user_daily (
    day     Date,
    user_id UUID,
    events  UInt64
) ENGINE = SummingMergeTree()
PARTITION BY toYYYYMM(day)
ORDER BY (day, user_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS user_daily_mv TO user_daily AS
SELECT toDate(occurred_at) AS day, user_id, toUInt64(count()) AS events
FROM events
WHERE user_id != toUUID('00000000-0000-0000-0000-000000000000')
GROUP BY day, user_id;

CREATE TABLE IF NOT EXISTS daily_activity (
    day        Date,
    event_type String,
    events     AggregateFunction(count),
    users      AggregateFunction(uniq, UUID)
) ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMM(day)
ORDER BY (day, event_type);

CREATE MATERIALIZED VIEW IF NOT EXISTS daily_activity_mv TO daily_activity AS
SELECT toDate(occurred_at) AS day, event_type, countState() AS events, uniqState(user_id) AS users
FROM events
WHERE user_id != toUUID('00000000-0000-0000-0000-000000000000')
GROUP BY day, event_type;

CREATE TABLE IF NOT EXISTS user_cohorts (
    user_id    UUID,
    registered Date
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(registered)
ORDER BY user_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS user_cohorts_mv TO user_cohorts AS
SELECT user_id, toDate(occurred_at) AS registered
FROM events
WHERE event_type = 'user.registered';
