-- Per-user notification settings beyond the per-type channels: quiet hours for push, in
-- the user's own timezone (users.timezone).
CREATE TABLE notification_settings (
    user_id            UUID        PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    -- Minutes after local midnight; both set or both null. A range that wraps midnight
    -- (22:00-07:00) is allowed.
    quiet_start_minute SMALLINT    CHECK (quiet_start_minute BETWEEN 0 AND 1439),
    quiet_end_minute   SMALLINT    CHECK (quiet_end_minute BETWEEN 0 AND 1439),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((quiet_start_minute IS NULL) = (quiet_end_minute IS NULL))
);
