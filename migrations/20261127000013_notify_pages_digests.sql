-- Broadcasts planned into pages at the start: the audience's id range is cut into
-- pages of `NOTIFY_PAGE_SIZE` users once, and every page runs as its own job, in
-- parallel. A page is done once (`done_at`, set in the transaction that writes it).
ALTER TABLE broadcasts
    DROP COLUMN page_cursor,
    ADD COLUMN pages      INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN pages_done INTEGER NOT NULL DEFAULT 0;

-- Broadcasts caught mid-walk by this change start over under the new plan (a page is
-- idempotent: whoever got the broadcast already gets nothing twice). Their old page
-- jobs find nothing to do.
UPDATE broadcasts SET status = 'queued', processed = 0 WHERE status = 'running';
INSERT INTO outbox (queue, payload, dedupe_key)
SELECT 'notify', jsonb_build_object('event_id', id), 'event:' || id || ':replan'
FROM broadcasts WHERE status = 'queued';

CREATE TABLE broadcast_pages (
    broadcast_id UUID        NOT NULL REFERENCES broadcasts (id) ON DELETE CASCADE,
    page         INTEGER     NOT NULL,
    -- Users with after_id < id <= last_id (NULL: unbounded on that side).
    after_id     UUID,
    last_id      UUID,
    users        INTEGER,
    done_at      TIMESTAMPTZ,
    PRIMARY KEY (broadcast_id, page)
);

-- Email digests: a user may fold notification emails into one email a day or a week
-- (sent after 08:00 in their timezone).
ALTER TABLE notification_settings
    ADD COLUMN email_digest   TEXT NOT NULL DEFAULT 'off' CHECK (email_digest IN ('off', 'daily', 'weekly')),
    ADD COLUMN last_digest_at TIMESTAMPTZ;

-- A notification waiting for the recipient's next digest (its email delivery is
-- claimed with status `digest`); `email_id` is the digest email that carried it.
CREATE TABLE notification_digest_items (
    event_id    UUID        NOT NULL,
    user_id     UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind        TEXT        NOT NULL,
    title       TEXT        NOT NULL,
    body        TEXT        NOT NULL,
    link        TEXT        NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    email_id    UUID        REFERENCES emails (id) ON DELETE SET NULL,
    PRIMARY KEY (event_id, user_id)
);
CREATE INDEX notification_digest_pending_idx ON notification_digest_items (user_id, created_at)
    WHERE email_id IS NULL;

-- Which notification (event, recipient) an email carries, so the email worker can
-- record its final SMTP outcome in the delivery statistics.
ALTER TABLE emails
    ADD COLUMN event_id UUID,
    ADD COLUMN user_id  UUID;

-- Who a broadcast's segment (`broadcasts.segment`: {role?, active_within_days?,
-- platform?}) reaches: active users, narrowed by each criterion given. One definition
-- for the audience count, the page plan and each page (a plain SQL function, inlined
-- by the planner, so a page's id range still uses the primary key).
CREATE FUNCTION broadcast_audience(segment JSONB) RETURNS TABLE (id UUID)
LANGUAGE sql STABLE AS $$
    SELECT u.id FROM users u
    WHERE u.status = 'active'
      AND (segment->>'role' IS NULL OR u.role = segment->>'role')
      AND (segment->>'active_within_days' IS NULL
           OR u.last_login_at >= now() - make_interval(days => (segment->>'active_within_days')::int))
      AND (segment->>'platform' IS NULL
           OR EXISTS (SELECT 1 FROM devices d WHERE d.user_id = u.id AND d.platform = segment->>'platform'))
$$;
