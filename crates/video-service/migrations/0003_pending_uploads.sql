-- Uploads a client sends straight to the bucket (presigned multipart): recorded when they
-- start, turned into a video when the client completes them, aborted by the sweep when
-- abandoned.
CREATE TABLE videos.pending_uploads (
    video_id      UUID PRIMARY KEY,
    owner_id      UUID NOT NULL,
    upload_id     TEXT NOT NULL,
    object_key    TEXT NOT NULL,
    title         TEXT NOT NULL,
    description   TEXT NOT NULL,
    visibility    TEXT NOT NULL CHECK (visibility IN ('public', 'unlisted', 'private')),
    declared_size BIGINT NOT NULL CHECK (declared_size > 0),
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX pending_uploads_expiry ON videos.pending_uploads (expires_at);
