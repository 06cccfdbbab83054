-- The help desk (seed item 7): tickets with their conversation (replies and staff-only
-- notes), attachments, the FAQ with "was this helpful" votes, and product feedback.
--
-- A ticket waits for staff from `waiting_since` (creation, or the user's last reply);
-- `response_due_at` is that instant plus its priority's SLA target, and the scheduler's
-- sweep stamps `sla_breached_at` once when the time passes unanswered. A staff reply
-- clears both. `resolved_at` starts the auto-close window.
CREATE TABLE support_tickets (
    id                UUID        PRIMARY KEY,
    number            BIGINT      GENERATED ALWAYS AS IDENTITY UNIQUE,
    user_id           UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    subject           TEXT        NOT NULL,
    description       TEXT        NOT NULL,
    status            TEXT        NOT NULL DEFAULT 'open'
                      CHECK (status IN ('open', 'pending', 'resolved', 'closed')),
    priority          TEXT        NOT NULL DEFAULT 'normal'
                      CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    category          TEXT        NOT NULL
                      CHECK (category IN ('account', 'playback', 'parties', 'videos', 'notifications',
                                          'abuse', 'bug', 'feature_request', 'other')),
    assigned_to       UUID        REFERENCES users (id) ON DELETE SET NULL,
    merged_into       UUID        REFERENCES support_tickets (id) ON DELETE SET NULL,
    waiting_since     TIMESTAMPTZ,
    response_due_at   TIMESTAMPTZ,
    sla_breached_at   TIMESTAMPTZ,
    first_response_at TIMESTAMPTZ,
    resolved_at       TIMESTAMPTZ,
    closed_at         TIMESTAMPTZ,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((status = 'open') = (waiting_since IS NOT NULL)),
    CHECK ((waiting_since IS NULL) = (response_due_at IS NULL)),
    CHECK (merged_into IS NULL OR status = 'closed'),
    CHECK (merged_into IS DISTINCT FROM id)
);
CREATE INDEX support_tickets_user ON support_tickets (user_id, created_at DESC);
CREATE INDEX support_tickets_queue ON support_tickets (status, priority, created_at);
CREATE INDEX support_tickets_assignee ON support_tickets (assigned_to, status) WHERE assigned_to IS NOT NULL;
CREATE INDEX support_tickets_due ON support_tickets (response_due_at)
    WHERE status = 'open' AND sla_breached_at IS NULL;
CREATE INDEX support_tickets_resolved ON support_tickets (resolved_at) WHERE status = 'resolved';

CREATE TABLE support_messages (
    id         UUID        PRIMARY KEY,
    ticket_id  UUID        NOT NULL REFERENCES support_tickets (id) ON DELETE CASCADE,
    author_id  UUID        REFERENCES users (id) ON DELETE SET NULL,
    body       TEXT        NOT NULL,
    from_staff BOOLEAN     NOT NULL,
    -- A staff-only note: never shown to the ticket's owner, never notified to them.
    internal   BOOLEAN     NOT NULL DEFAULT false,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (NOT internal OR from_staff)
);
CREATE INDEX support_messages_ticket ON support_messages (ticket_id, created_at, id);

CREATE TABLE support_attachments (
    id           UUID        PRIMARY KEY,
    ticket_id    UUID        NOT NULL REFERENCES support_tickets (id) ON DELETE CASCADE,
    uploader_id  UUID        REFERENCES users (id) ON DELETE SET NULL,
    filename     TEXT        NOT NULL,
    content_type TEXT        NOT NULL,
    size_bytes   BIGINT      NOT NULL CHECK (size_bytes > 0),
    storage_key  TEXT        NOT NULL UNIQUE,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX support_attachments_ticket ON support_attachments (ticket_id, created_at);

CREATE TABLE support_faq (
    id                UUID        PRIMARY KEY,
    category          TEXT        NOT NULL,
    question          TEXT        NOT NULL,
    answer            TEXT        NOT NULL,
    position          INTEGER     NOT NULL DEFAULT 0,
    published         BOOLEAN     NOT NULL DEFAULT false,
    helpful_count     INTEGER     NOT NULL DEFAULT 0 CHECK (helpful_count >= 0),
    not_helpful_count INTEGER     NOT NULL DEFAULT 0 CHECK (not_helpful_count >= 0),
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX support_faq_order ON support_faq (category, position, created_at) WHERE published;

-- One vote per user and entry (changing it moves the counts, in the same transaction).
CREATE TABLE support_faq_votes (
    faq_id     UUID        NOT NULL REFERENCES support_faq (id) ON DELETE CASCADE,
    user_id    UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    helpful    BOOLEAN     NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (faq_id, user_id)
);

CREATE TABLE support_feedback (
    id          UUID        PRIMARY KEY,
    user_id     UUID        REFERENCES users (id) ON DELETE SET NULL,
    rating      SMALLINT    NOT NULL CHECK (rating BETWEEN 1 AND 5),
    text        TEXT        NOT NULL DEFAULT '',
    page        TEXT        NOT NULL DEFAULT '',
    context     JSONB       NOT NULL DEFAULT '{}',
    app_version TEXT        NOT NULL DEFAULT '',
    platform    TEXT        NOT NULL DEFAULT '',
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX support_feedback_created ON support_feedback (created_at DESC);
