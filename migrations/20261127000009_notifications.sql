-- The notification pipeline's first part: in-app notifications, per-type channel
-- preferences, delivery records that make every (event, recipient, channel) happen
-- once, and the devices mobile apps register for push.

CREATE TABLE notifications (
    id          UUID        PRIMARY KEY,
    user_id     UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind        TEXT        NOT NULL,
    event_id    UUID        REFERENCES domain_events (id) ON DELETE SET NULL,
    actor_id    UUID        REFERENCES users (id) ON DELETE SET NULL,
    title       TEXT        NOT NULL,
    body        TEXT        NOT NULL,
    -- Path in the frontend the notification opens.
    link        TEXT,
    data        JSONB       NOT NULL DEFAULT '{}',
    read_at     TIMESTAMPTZ,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- A retried or duplicated fan-out writes one row per event and recipient.
CREATE UNIQUE INDEX notifications_once ON notifications (event_id, user_id) WHERE event_id IS NOT NULL;
CREATE INDEX notifications_user_idx ON notifications (user_id, created_at DESC, id DESC);
CREATE INDEX notifications_unread_idx ON notifications (user_id) WHERE read_at IS NULL;

-- Only the choices a user changed; the defaults live in the code (one catalogue).
CREATE TABLE notification_preferences (
    user_id     UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind        TEXT        NOT NULL,
    in_app      BOOLEAN     NOT NULL,
    email       BOOLEAN     NOT NULL,
    push        BOOLEAN     NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, kind)
);

-- Exactly-once as the user sees it: the key is claimed in the transaction that queues
-- the delivery.
CREATE TABLE notification_deliveries (
    event_id    UUID        NOT NULL,
    user_id     UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    channel     TEXT        NOT NULL CHECK (channel IN ('in_app', 'email', 'push')),
    status      TEXT        NOT NULL,
    detail      TEXT,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, user_id, channel)
);

CREATE TABLE devices (
    id           UUID        PRIMARY KEY,
    user_id      UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    device_id    TEXT        NOT NULL UNIQUE,
    platform     TEXT        NOT NULL CHECK (platform IN ('ios', 'android', 'web')),
    push_token   TEXT        NOT NULL,
    app_version  TEXT        NOT NULL DEFAULT '',
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX devices_user_idx ON devices (user_id);
