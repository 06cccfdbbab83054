-- Party polls (seed item 6): a question with 2 to 10 options, single or multiple choice,
-- anonymous or not, results hidden until closed if the creator says so. A poll is open
-- while `closed_at` is NULL and `closes_at` (when it has a duration) is in the future;
-- the scheduler's sweep sets `closed_at` once the time is up.
CREATE TABLE party_polls (
    id               UUID        PRIMARY KEY,
    party_id         UUID        NOT NULL REFERENCES parties (id) ON DELETE CASCADE,
    creator_id       UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    question         TEXT        NOT NULL,
    multiple_choice  BOOLEAN     NOT NULL DEFAULT FALSE,
    anonymous        BOOLEAN     NOT NULL DEFAULT FALSE,
    hide_results     BOOLEAN     NOT NULL DEFAULT FALSE,
    duration_seconds INTEGER     CHECK (duration_seconds > 0),
    closes_at        TIMESTAMPTZ,
    closed_at        TIMESTAMPTZ,
    -- `closed` by the creator or the host, `expired` at `closes_at`, `party_ended`.
    closed_reason    TEXT        CHECK (closed_reason IN ('closed', 'expired', 'party_ended')),
    -- Users with at least one vote; kept with the option counts under the poll's row lock.
    voters_count     INTEGER     NOT NULL DEFAULT 0 CHECK (voters_count >= 0),
    -- Bumped by every change of the counts or the state: sockets keep the highest.
    version          BIGINT      NOT NULL DEFAULT 0,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((duration_seconds IS NULL) = (closes_at IS NULL)),
    CHECK ((closed_at IS NULL) = (closed_reason IS NULL))
);
CREATE INDEX party_polls_party ON party_polls (party_id, created_at DESC);
CREATE INDEX party_polls_open ON party_polls (closes_at) WHERE closed_at IS NULL;

CREATE TABLE party_poll_options (
    id          UUID     PRIMARY KEY,
    poll_id     UUID     NOT NULL REFERENCES party_polls (id) ON DELETE CASCADE,
    position    SMALLINT NOT NULL,
    text        TEXT     NOT NULL,
    votes_count INTEGER  NOT NULL DEFAULT 0 CHECK (votes_count >= 0),
    UNIQUE (poll_id, position)
);

-- One row per (voter, chosen option); a single-choice poll has one row per voter.
CREATE TABLE party_poll_votes (
    poll_id   UUID        NOT NULL REFERENCES party_polls (id) ON DELETE CASCADE,
    user_id   UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    option_id UUID        NOT NULL REFERENCES party_poll_options (id) ON DELETE CASCADE,
    voted_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (poll_id, user_id, option_id)
);
CREATE INDEX party_poll_votes_option ON party_poll_votes (option_id, voted_at);
