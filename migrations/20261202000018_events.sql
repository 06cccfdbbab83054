-- Scheduled events (seed item 5): an organizer's event with times in a time zone, an
-- optional video (a library video or a URL), a capacity with a waitlist, an optional
-- approval step, RSVPs, invitations. The scheduler moves `status` from `scheduled` to
-- `live` at `start_time` and to `ended` at `end_time`; clients only cancel.
CREATE TABLE events (
    id               UUID        PRIMARY KEY,
    organizer_id     UUID        NOT NULL REFERENCES users (id),
    title            TEXT        NOT NULL,
    description      TEXT        NOT NULL DEFAULT '',
    start_time       TIMESTAMPTZ NOT NULL,
    end_time         TIMESTAMPTZ NOT NULL,
    -- The IANA zone the organizer plans in (for display and the calendar file).
    timezone         TEXT        NOT NULL DEFAULT 'UTC',
    location         TEXT        NOT NULL DEFAULT '',
    video_id         UUID        REFERENCES videos (id) ON DELETE SET NULL,
    video_url        TEXT,
    max_attendees    INTEGER     CHECK (max_attendees > 0),
    require_approval BOOLEAN     NOT NULL DEFAULT FALSE,
    is_public        BOOLEAN     NOT NULL DEFAULT TRUE,
    status           TEXT        NOT NULL DEFAULT 'scheduled'
                     CHECK (status IN ('scheduled', 'live', 'ended', 'cancelled')),
    -- The party opened for the event when it went live (events with a video).
    party_id         UUID        REFERENCES parties (id) ON DELETE SET NULL,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (end_time > start_time),
    CHECK (video_id IS NULL OR video_url IS NULL)
);
CREATE INDEX events_upcoming ON events (start_time) WHERE status = 'scheduled';
CREATE INDEX events_live ON events (end_time) WHERE status = 'live';
CREATE INDEX events_organizer ON events (organizer_id, start_time DESC);

-- One row per user who answered: `going` (holds a place), `maybe`, `declined`,
-- `pending` (waits for the organizer's approval), `waitlisted` (waits for a place, in
-- `responded_at` order).
CREATE TABLE event_attendees (
    event_id     UUID        NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    user_id      UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    status       TEXT        NOT NULL CHECK (status IN ('going', 'maybe', 'declined', 'pending', 'waitlisted')),
    responded_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, user_id)
);
CREATE INDEX event_attendees_user ON event_attendees (user_id);
CREATE INDEX event_attendees_waitlist ON event_attendees (event_id, responded_at) WHERE status = 'waitlisted';

CREATE TABLE event_invitations (
    event_id   UUID        NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    user_id    UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    invited_by UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- `pending`, then `accepted` or `declined`.
    status     TEXT        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'accepted', 'declined')),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, user_id)
);
CREATE INDEX event_invitations_user ON event_invitations (user_id) WHERE status = 'pending';
