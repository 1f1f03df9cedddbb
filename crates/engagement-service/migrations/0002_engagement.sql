-- Likes, comments, posts, buffered views, and the counters kept equal to their rows.
ALTER TABLE engagement.video_stats
    ADD COLUMN comments BIGINT NOT NULL DEFAULT 0 CHECK (comments >= 0),
    ADD COLUMN watch_seconds DOUBLE PRECISION NOT NULL DEFAULT 0 CHECK (watch_seconds >= 0),
    ADD COLUMN duration_seconds INTEGER NOT NULL DEFAULT 0 CHECK (duration_seconds >= 0);
CREATE INDEX video_stats_updated ON engagement.video_stats (updated_at);

-- One row per (target, user): a like is a fact, the counters are its sum.
CREATE TABLE engagement.likes (
    target_type TEXT NOT NULL CHECK (target_type IN ('video', 'post', 'comment')),
    target_id   UUID NOT NULL,
    user_id     UUID NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (target_type, target_id, user_id)
);
CREATE INDEX likes_by_user ON engagement.likes (user_id);

CREATE TABLE engagement.posts (
    id         UUID PRIMARY KEY,
    author_id  UUID NOT NULL,
    body       TEXT NOT NULL,
    video_id   UUID,
    likes      BIGINT NOT NULL DEFAULT 0 CHECK (likes >= 0),
    created_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX posts_by_author ON engagement.posts (author_id, created_at DESC, id DESC);
CREATE INDEX posts_by_video ON engagement.posts (video_id) WHERE video_id IS NOT NULL;
CREATE INDEX posts_updated ON engagement.posts (updated_at);

-- One level of replies: a reply's parent is a top-level comment of the same video.
CREATE TABLE engagement.comments (
    id         UUID PRIMARY KEY,
    video_id   UUID NOT NULL,
    parent_id  UUID REFERENCES engagement.comments (id) ON DELETE CASCADE,
    author_id  UUID NOT NULL,
    body       TEXT NOT NULL,
    likes      BIGINT NOT NULL DEFAULT 0 CHECK (likes >= 0),
    replies    BIGINT NOT NULL DEFAULT 0 CHECK (replies >= 0),
    created_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX comments_top ON engagement.comments (video_id, created_at DESC, id DESC)
    WHERE parent_id IS NULL;
CREATE INDEX comments_replies ON engagement.comments (parent_id, created_at DESC, id DESC)
    WHERE parent_id IS NOT NULL;
CREATE INDEX comments_by_author ON engagement.comments (author_id);

-- Videos video-service deleted: nothing is counted for them again.
CREATE TABLE engagement.deleted_videos (
    video_id   UUID PRIMARY KEY,
    deleted_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Batches of buffered views already added: a batch applied and then retried after a
-- crash is not added twice.
CREATE TABLE engagement.view_flushes (
    batch_id   UUID PRIMARY KEY,
    flushed_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
