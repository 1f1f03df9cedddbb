CREATE TABLE videos.videos (
    id               UUID PRIMARY KEY,
    owner_id         UUID NOT NULL,
    title            TEXT NOT NULL CHECK (char_length(title) BETWEEN 1 AND 200),
    description      TEXT NOT NULL DEFAULT '' CHECK (char_length(description) <= 5000),
    duration_seconds INTEGER NOT NULL DEFAULT 0 CHECK (duration_seconds >= 0),
    status           TEXT NOT NULL DEFAULT 'processing'
                     CHECK (status IN ('processing', 'published', 'failed')),
    tags             TEXT[] NOT NULL DEFAULT '{}',
    object_key       TEXT,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Keyset pagination of the public feed: newest published first.
CREATE INDEX videos_published_feed ON videos.videos (created_at DESC, id DESC)
    WHERE status = 'published';
CREATE INDEX videos_owner ON videos.videos (owner_id, created_at DESC);
