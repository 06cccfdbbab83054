-- Watch parties: the room, its members and bans, and its chat. The live playback
-- state is kept in Redis for the realtime nodes and written back here on every
-- change (`playback`), so neither a node restart nor a Redis restart loses it.

CREATE TABLE parties (
    id               UUID        PRIMARY KEY,
    host_id          UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title            TEXT        NOT NULL,
    description      TEXT        NOT NULL DEFAULT '',
    -- What is watched: a library video or an external URL (exactly one).
    video_id         UUID        REFERENCES videos (id) ON DELETE SET NULL,
    external_url     TEXT,
    visibility       TEXT        NOT NULL DEFAULT 'public'
                     CHECK (visibility IN ('public', 'friends', 'private')),
    invite_code      TEXT        NOT NULL UNIQUE,
    -- Who may send video_control: the host only, the host and co-hosts, or everyone.
    control_mode     TEXT        NOT NULL DEFAULT 'host'
                     CHECK (control_mode IN ('host', 'cohosts', 'everyone')),
    chat_enabled     BOOLEAN     NOT NULL DEFAULT TRUE,
    slow_mode_seconds INTEGER    NOT NULL DEFAULT 0 CHECK (slow_mode_seconds BETWEEN 0 AND 3600),
    max_members      INTEGER     NOT NULL DEFAULT 50 CHECK (max_members BETWEEN 2 AND 5000),
    allow_screen_share BOOLEAN   NOT NULL DEFAULT TRUE,
    -- Buffering: 'wait' pauses the room while a member buffers (capped by
    -- buffer_wait_ms); 'independent' lets a lagging member catch up on its own.
    sync_policy      TEXT        NOT NULL DEFAULT 'wait'
                     CHECK (sync_policy IN ('wait', 'independent')),
    buffer_wait_ms   INTEGER     NOT NULL DEFAULT 8000 CHECK (buffer_wait_ms BETWEEN 0 AND 60000),
    playback         JSONB       NOT NULL DEFAULT '{}',
    status           TEXT        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'ended')),
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- At most one source (a deleted library video leaves none).
    CHECK (video_id IS NULL OR external_url IS NULL)
);
CREATE INDEX parties_listing_idx ON parties (created_at DESC) WHERE status = 'active';
CREATE INDEX parties_host_idx ON parties (host_id, created_at DESC);

CREATE TABLE party_members (
    party_id   UUID        NOT NULL REFERENCES parties (id) ON DELETE CASCADE,
    user_id    UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       TEXT        NOT NULL DEFAULT 'member' CHECK (role IN ('host', 'cohost', 'member')),
    joined_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (party_id, user_id)
);
CREATE INDEX party_members_user_idx ON party_members (user_id, joined_at DESC);
-- One host per party, enforced by the database.
CREATE UNIQUE INDEX party_members_one_host ON party_members (party_id) WHERE role = 'host';

CREATE TABLE party_bans (
    party_id   UUID        NOT NULL REFERENCES parties (id) ON DELETE CASCADE,
    user_id    UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    banned_by  UUID        REFERENCES users (id) ON DELETE SET NULL,
    reason     TEXT        NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (party_id, user_id)
);

CREATE TABLE party_messages (
    id         UUID        PRIMARY KEY,
    party_id   UUID        NOT NULL REFERENCES parties (id) ON DELETE CASCADE,
    user_id    UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    content    TEXT        NOT NULL,
    reply_to   UUID        REFERENCES party_messages (id) ON DELETE SET NULL,
    -- The sender's own id for the message, echoed in the acknowledgement so a client
    -- can match it; unique per sender so a resent frame is stored once.
    client_id  TEXT,
    is_edited  BOOLEAN     NOT NULL DEFAULT FALSE,
    is_deleted BOOLEAN     NOT NULL DEFAULT FALSE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- History newest first; ids are UUIDv7, so (created_at, id) is a stable cursor.
CREATE INDEX party_messages_history_idx ON party_messages (party_id, created_at DESC, id DESC);
CREATE UNIQUE INDEX party_messages_client_id ON party_messages (party_id, user_id, client_id)
    WHERE client_id IS NOT NULL;
