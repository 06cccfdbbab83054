-- Indexes for the comment list orderings (`top`, `oldest`/`newest`) and reply lists.
CREATE INDEX video_comments_top_likes_idx
    ON video_comments (video_id, likes_count DESC, created_at DESC) WHERE parent_id IS NULL;
DROP INDEX video_comments_replies_idx;
CREATE INDEX video_comments_replies_idx ON video_comments (parent_id, created_at, id);
