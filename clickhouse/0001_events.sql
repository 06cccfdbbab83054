-- Product analytics events: one row per thing that happened (a view started, a
-- download, a reaction, a notification delivered). Written in batches by the analytics
-- worker; read by analysts directly.
--
-- ReplacingMergeTree keyed on the event id: the analytics queue delivers at least once,
-- so a re-delivered batch is folded away on merge (query with FINAL, or GROUP BY
-- event_id, where exact counts matter before merges run).
CREATE TABLE IF NOT EXISTS events (
    event_date  Date DEFAULT toDate(occurred_at),
    occurred_at DateTime,
    event_type  String,
    event_id    UUID,
    -- Zero UUID when not applicable (anonymous user, no party, ...).
    user_id     UUID,
    party_id    UUID,
    video_id    UUID,
    -- Event-specific fields, as a JSON object.
    properties  String
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(event_date)
ORDER BY (event_type, occurred_at, event_id);
