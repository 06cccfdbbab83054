-- Account data exports (the owner's copy of their data, made by the export worker).

CREATE TABLE data_exports (
    id           UUID        PRIMARY KEY,
    user_id      UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    status       TEXT        NOT NULL DEFAULT 'queued'
                 CHECK (status IN ('queued', 'running', 'ready', 'failed')),
    -- Relative to STORAGE_DIR once ready.
    file_path    TEXT,
    size_bytes   BIGINT,
    error        TEXT,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at  TIMESTAMPTZ,
    -- The file is removed after this.
    expires_at   TIMESTAMPTZ
);

CREATE INDEX data_exports_user_idx ON data_exports (user_id, created_at DESC);
-- At most one export in progress per user.
CREATE UNIQUE INDEX data_exports_one_pending ON data_exports (user_id) WHERE status IN ('queued', 'running');

-- Accounts waiting out their deletion grace period.
CREATE INDEX users_deletion_due_idx ON users (deletion_requested_at) WHERE deletion_requested_at IS NOT NULL;
