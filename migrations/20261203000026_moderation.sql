-- Content moderation (seed item 10): users report videos, comments, chat messages,
-- parties, groups and users; staff work the queue (claim, resolve with an action). And
-- the audit log: one row per staff action, written in the action's own transaction.
--
-- A report keeps `snapshot`, the reported text as it was when reported (a title, a
-- comment, a message), so the evidence outlives the content's removal. `target_owner_id`
-- is whose content it is (the user, for a user report): the one warned or suspended.
CREATE TABLE content_reports (
    id              UUID        PRIMARY KEY,
    reporter_id     UUID        REFERENCES users (id) ON DELETE SET NULL,
    target_type     TEXT        NOT NULL
                    CHECK (target_type IN ('video', 'comment', 'message', 'party', 'group', 'user')),
    target_id       UUID        NOT NULL,
    target_owner_id UUID        REFERENCES users (id) ON DELETE SET NULL,
    reason          TEXT        NOT NULL
                    CHECK (reason IN ('spam', 'harassment', 'hate', 'violence', 'sexual', 'self_harm',
                                      'misinformation', 'copyright', 'impersonation', 'other')),
    details         TEXT        NOT NULL DEFAULT '' CHECK (length(details) <= 2000),
    snapshot        TEXT        NOT NULL DEFAULT '',
    status          TEXT        NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'claimed', 'resolved')),
    claimed_by      UUID        REFERENCES users (id) ON DELETE SET NULL,
    claimed_at      TIMESTAMPTZ,
    action          TEXT        CHECK (action IN ('remove', 'warn', 'suspend', 'dismiss')),
    resolution_note TEXT,
    resolved_by     UUID        REFERENCES users (id) ON DELETE SET NULL,
    resolved_at     TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((status = 'resolved') = (resolved_at IS NOT NULL)),
    CHECK ((status = 'resolved') = (action IS NOT NULL)),
    CHECK (status <> 'claimed' OR claimed_at IS NOT NULL)
);
-- One report per reporter and target while it is being handled.
CREATE UNIQUE INDEX content_reports_once ON content_reports (reporter_id, target_type, target_id)
    WHERE status <> 'resolved';
CREATE INDEX content_reports_queue ON content_reports (status, created_at);
CREATE INDEX content_reports_target ON content_reports (target_type, target_id) WHERE status <> 'resolved';
CREATE INDEX content_reports_reporter ON content_reports (reporter_id, created_at DESC);

CREATE TABLE audit_log (
    id          UUID        PRIMARY KEY,
    actor_id    UUID        REFERENCES users (id) ON DELETE SET NULL,
    -- Kept as written: the row still says who acted after the account is gone.
    actor_username TEXT     NOT NULL,
    action      TEXT        NOT NULL,
    target_type TEXT        NOT NULL,
    target_id   UUID,
    details     JSONB       NOT NULL DEFAULT '{}',
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_time ON audit_log (created_at DESC, id DESC);
CREATE INDEX audit_log_actor ON audit_log (actor_id, created_at DESC);
CREATE INDEX audit_log_target ON audit_log (target_type, target_id, created_at DESC);
