-- The video library: videos, likes, threaded comments and their likes.

CREATE TABLE videos (
    id              UUID        PRIMARY KEY,
    owner_id        UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title           TEXT        NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    description     TEXT        NOT NULL DEFAULT '' CHECK (length(description) <= 5000),
    tags            TEXT[]      NOT NULL DEFAULT '{}',
    category        TEXT        NOT NULL DEFAULT '',
    visibility      TEXT        NOT NULL DEFAULT 'public'
                    CHECK (visibility IN ('public', 'unlisted', 'friends', 'private')),
    allow_download  BOOLEAN     NOT NULL DEFAULT false,
    -- processing until the media worker has probed and prepared the file.
    status          TEXT        NOT NULL DEFAULT 'processing'
                    CHECK (status IN ('processing', 'ready', 'failed')),
    failure_reason  TEXT,
    -- Where the file is in storage; the original name is kept only for display.
    storage_key     TEXT        NOT NULL,
    original_filename TEXT      NOT NULL,
    -- Container and media type read from the file's bytes.
    container       TEXT        NOT NULL,
    content_type    TEXT        NOT NULL,
    size_bytes      BIGINT      NOT NULL,
    sha256          TEXT        NOT NULL,
    duration_seconds DOUBLE PRECISION,
    thumbnail_key   TEXT,
    -- When the stored file last changed (Last-Modified of downloads).
    file_updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    like_count      INT         NOT NULL DEFAULT 0 CHECK (like_count >= 0),
    dislike_count   INT         NOT NULL DEFAULT 0 CHECK (dislike_count >= 0),
    comment_count   INT         NOT NULL DEFAULT 0 CHECK (comment_count >= 0),
    search          TSVECTOR    GENERATED ALWAYS AS
                    (to_tsvector('simple', title || ' ' || description)) STORED,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX videos_owner_idx ON videos (owner_id, created_at DESC);
CREATE INDEX videos_public_idx ON videos (created_at DESC) WHERE visibility = 'public';
CREATE INDEX videos_search_idx ON videos USING GIN (search);
CREATE INDEX videos_tags_idx ON videos USING GIN (tags);
CREATE INDEX videos_category_idx ON videos (category);

CREATE TRIGGER videos_set_updated_at BEFORE UPDATE ON videos
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- One vote per user per video, enforced here.
CREATE TABLE video_likes (
    video_id    UUID        NOT NULL REFERENCES videos (id) ON DELETE CASCADE,
    user_id     UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    is_like     BOOLEAN     NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (video_id, user_id)
);

CREATE TABLE video_comments (
    id          UUID        PRIMARY KEY,
    video_id    UUID        NOT NULL REFERENCES videos (id) ON DELETE CASCADE,
    user_id     UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- Replies point at a top-level comment (one level of threading, as the frontend shows).
    parent_id   UUID        REFERENCES video_comments (id) ON DELETE CASCADE,
    content     TEXT        NOT NULL CHECK (length(content) <= 2000),
    is_edited   BOOLEAN     NOT NULL DEFAULT false,
    -- A deleted comment with replies stays as a placeholder so the thread keeps its shape.
    is_deleted  BOOLEAN     NOT NULL DEFAULT false,
    likes_count INT         NOT NULL DEFAULT 0 CHECK (likes_count >= 0),
    reply_count INT         NOT NULL DEFAULT 0 CHECK (reply_count >= 0),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX video_comments_top_idx ON video_comments (video_id, created_at DESC) WHERE parent_id IS NULL;
CREATE INDEX video_comments_replies_idx ON video_comments (parent_id, created_at);

CREATE TRIGGER video_comments_set_updated_at BEFORE UPDATE ON video_comments
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE comment_likes (
    comment_id  UUID        NOT NULL REFERENCES video_comments (id) ON DELETE CASCADE,
    user_id     UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (comment_id, user_id)
);
