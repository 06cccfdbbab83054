-- Top-level comments per video (the count of the first page of a comment list),
-- kept with the other counters so listing needs no count query.
ALTER TABLE videos ADD COLUMN top_comment_count INT NOT NULL DEFAULT 0 CHECK (top_comment_count >= 0);
UPDATE videos v SET top_comment_count =
    (SELECT count(*) FROM video_comments c WHERE c.video_id = v.id AND c.parent_id IS NULL);
