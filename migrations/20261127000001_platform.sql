-- Platform foundation: helpers, the transactional outbox, stored emails.

-- Keeps `updated_at` current on every UPDATE of a table that opts in with:
--   CREATE TRIGGER t BEFORE UPDATE ON x FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE OR REPLACE FUNCTION set_updated_at() RETURNS trigger AS $$
BEGIN
    IF NEW IS DISTINCT FROM OLD AND NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at THEN
        NEW.updated_at := now();
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

-- Work that must follow a write is recorded here in the same transaction as the write,
-- then relayed to its Redis queue (right after commit, and by the scheduler's sweep for
-- anything a crash left behind). A relayed row is deleted.
CREATE TABLE outbox (
    id          BIGSERIAL PRIMARY KEY,
    queue       TEXT        NOT NULL CHECK (queue <> ''),
    payload     JSONB       NOT NULL,
    -- Duplicate pushes with the same key within the dedupe window enqueue one job.
    -- NULL means "use the row id", so a relay that dies after the push but before the
    -- delete never enqueues the row twice.
    dedupe_key  TEXT,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- An email to send. The job carries only `id`; the worker reads the row, sends, and
-- records the outcome. `sent_at` set means done: a re-delivered job sends nothing.
CREATE TABLE emails (
    id          UUID        PRIMARY KEY,
    to_address  TEXT        NOT NULL CHECK (to_address <> ''),
    subject     TEXT        NOT NULL,
    body_text   TEXT        NOT NULL,
    body_html   TEXT,
    -- Why the email exists (e.g. `password_reset`); for logs and statistics.
    kind        TEXT        NOT NULL,
    status      TEXT        NOT NULL DEFAULT 'queued'
                CHECK (status IN ('queued', 'sent', 'failed')),
    attempts    INT         NOT NULL DEFAULT 0,
    last_error  TEXT,
    -- Message-ID header, fixed at creation so a resend after a crash is recognisable.
    message_id  TEXT        NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    sent_at     TIMESTAMPTZ
);

CREATE INDEX emails_status_created_idx ON emails (status, created_at);

CREATE TRIGGER emails_set_updated_at BEFORE UPDATE ON emails
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
