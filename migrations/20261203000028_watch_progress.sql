-- Where each user is in each video they watch: the apps' "continue watching" row on the
-- home screen (`GET /api/mobile/home/`), written by `PUT /api/videos/{id}/progress/`.
CREATE TABLE watch_progress (
    user_id          UUID             NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    video_id         UUID             NOT NULL REFERENCES videos (id) ON DELETE CASCADE,
    position_seconds DOUBLE PRECISION NOT NULL CHECK (position_seconds >= 0),
    updated_at       TIMESTAMPTZ      NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, video_id)
);
CREATE INDEX watch_progress_recent ON watch_progress (user_id, updated_at DESC);
-- The home screen's parties of friends: active parties by host.
CREATE INDEX parties_active_host ON parties (host_id) WHERE status = 'active';
