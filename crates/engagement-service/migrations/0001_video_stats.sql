CREATE TABLE engagement.video_stats (
    video_id   UUID PRIMARY KEY,
    views      BIGINT NOT NULL DEFAULT 0 CHECK (views >= 0),
    likes      BIGINT NOT NULL DEFAULT 0 CHECK (likes >= 0),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
