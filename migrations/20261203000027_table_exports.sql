-- CSV exports for staff (issue 15): the user directory, support tickets, feedback and
-- moderation reports, streamed by the `export` worker into object storage. One row per
-- export; `attempts` counts the worker's runs (a run killed mid-way is run again from
-- the start and replaces the same file: one file in the end).
CREATE TABLE table_exports (
    id           UUID        PRIMARY KEY,
    requested_by UUID        REFERENCES users (id) ON DELETE SET NULL,
    kind         TEXT        NOT NULL CHECK (kind IN ('users', 'tickets', 'feedback', 'reports')),
    columns      TEXT[]      NOT NULL CHECK (cardinality(columns) > 0),
    filters      JSONB       NOT NULL DEFAULT '{}',
    status       TEXT        NOT NULL DEFAULT 'queued'
                 CHECK (status IN ('queued', 'running', 'done', 'failed')),
    attempts     INTEGER     NOT NULL DEFAULT 0,
    rows_done    BIGINT      NOT NULL DEFAULT 0,
    rows_total   BIGINT,
    file_key     TEXT,
    size_bytes   BIGINT,
    error        TEXT,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at   TIMESTAMPTZ,
    finished_at  TIMESTAMPTZ,
    expires_at   TIMESTAMPTZ,
    CHECK ((status = 'done') = (file_key IS NOT NULL))
);
CREATE INDEX table_exports_requester ON table_exports (requested_by, created_at DESC);
CREATE INDEX table_exports_expiry ON table_exports (expires_at) WHERE expires_at IS NOT NULL;

-- A text cell a spreadsheet will not run as a formula: one starting with =, +, -, @, a
-- tab or a carriage return gets a leading apostrophe (OWASP's advice for CSV injection).
CREATE FUNCTION csv_safe(v TEXT) RETURNS TEXT
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE WHEN v ~ '^[-=+@\t\r]' THEN '''' || v ELSE v END;

-- An instant as RFC 3339 in UTC with milliseconds (`2026-12-03T04:53:34.123Z`).
CREATE FUNCTION csv_time(t TIMESTAMPTZ) RETURNS TEXT
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"');
