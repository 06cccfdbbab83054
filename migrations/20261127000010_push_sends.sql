-- One push per event and device: a send is claimed (`sending`) before the provider is
-- called, so a retried job resends only what failed transiently (`retry`), never what
-- went out or may have gone out.
CREATE TABLE push_sends (
    event_id    UUID        NOT NULL,
    device_id   TEXT        NOT NULL,
    user_id     UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    platform    TEXT        NOT NULL,
    status      TEXT        NOT NULL CHECK (status IN ('sending', 'sent', 'retry', 'dead', 'failed')),
    detail      TEXT,
    attempts    INTEGER     NOT NULL DEFAULT 1,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, device_id)
);
