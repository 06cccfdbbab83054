-- The social graph: friend requests, friendships, follows, blocks; and domain events
-- for the notification pipeline.

CREATE TABLE friend_requests (
    id            UUID        PRIMARY KEY,
    from_user     UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    to_user       UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    status        TEXT        NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'accepted', 'declined', 'cancelled')),
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    responded_at  TIMESTAMPTZ,
    CHECK (from_user <> to_user)
);

-- At most one pending request between two people, whichever way.
CREATE UNIQUE INDEX friend_requests_one_pending
    ON friend_requests (LEAST(from_user, to_user), GREATEST(from_user, to_user))
    WHERE status = 'pending';
CREATE INDEX friend_requests_to_idx ON friend_requests (to_user, created_at DESC) WHERE status = 'pending';
CREATE INDEX friend_requests_from_idx ON friend_requests (from_user, created_at DESC) WHERE status = 'pending';

-- One row per friendship, the smaller id first.
CREATE TABLE friendships (
    user_a      UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    user_b      UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (user_a, user_b),
    CHECK (user_a < user_b)
);
CREATE INDEX friendships_b_idx ON friendships (user_b);

CREATE TABLE follows (
    follower    UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    followee    UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (follower, followee),
    CHECK (follower <> followee)
);
CREATE INDEX follows_followee_idx ON follows (followee, created_at DESC);

CREATE TABLE blocks (
    blocker     UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    blocked     UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (blocker, blocked),
    CHECK (blocker <> blocked)
);
CREATE INDEX blocks_blocked_idx ON blocks (blocked);

-- Things a user should hear of. Written in the transaction of the change, with an
-- outbox row that puts `{event_id}` on the `notify` queue for the notification
-- pipeline.
CREATE TABLE domain_events (
    id          UUID        PRIMARY KEY,
    kind        TEXT        NOT NULL,
    actor_id    UUID        REFERENCES users (id) ON DELETE SET NULL,
    -- The user the event is addressed to (NULL for events with computed audiences).
    recipient_id UUID       REFERENCES users (id) ON DELETE CASCADE,
    payload     JSONB       NOT NULL DEFAULT '{}',
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX domain_events_recipient_idx ON domain_events (recipient_id, created_at DESC);
