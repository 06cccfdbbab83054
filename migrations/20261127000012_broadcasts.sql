-- Admin broadcasts: a message to every user or a segment, through the same pipeline
-- (the broadcast is also a domain event, `admin.broadcast`, with the same id). The
-- fan-out walks the audience in pages of users by id; `processed` is its progress.
CREATE TABLE broadcasts (
    id           UUID        PRIMARY KEY REFERENCES domain_events (id) ON DELETE CASCADE,
    created_by   UUID        REFERENCES users (id) ON DELETE SET NULL,
    title        TEXT        NOT NULL,
    body         TEXT        NOT NULL,
    link         TEXT,
    -- {role?, active_within_days?, platform?}
    segment      JSONB       NOT NULL DEFAULT '{}',
    in_app       BOOLEAN     NOT NULL,
    email        BOOLEAN     NOT NULL,
    push         BOOLEAN     NOT NULL,
    status       TEXT        NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'done')),
    audience     INTEGER     NOT NULL DEFAULT 0,
    processed    INTEGER     NOT NULL DEFAULT 0,
    -- The last user id of the last page done: a page runs only when it follows it, so a
    -- repeated page job changes nothing.
    page_cursor  UUID,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at  TIMESTAMPTZ
);
