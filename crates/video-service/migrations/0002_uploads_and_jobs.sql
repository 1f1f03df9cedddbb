-- Uploads: a video is `uploaded` once its object is complete, `processing` while a job
-- probes it, then `ready` or `failed` (with the reason). The seeded `published` videos are
-- `ready` and public.
ALTER TABLE videos.videos DROP CONSTRAINT videos_status_check;
UPDATE videos.videos SET status = 'ready' WHERE status = 'published';
ALTER TABLE videos.videos
    ADD CONSTRAINT videos_status_check
        CHECK (status IN ('uploaded', 'processing', 'ready', 'failed')),
    ALTER COLUMN status SET DEFAULT 'uploaded',
    ADD COLUMN visibility TEXT NOT NULL DEFAULT 'public'
        CHECK (visibility IN ('public', 'unlisted', 'private')),
    ADD COLUMN failure_reason TEXT,
    ADD COLUMN size_bytes BIGINT NOT NULL DEFAULT 0 CHECK (size_bytes >= 0),
    ADD COLUMN sha256 BYTEA,
    ADD COLUMN content_type TEXT,
    ADD COLUMN width INTEGER CHECK (width > 0),
    ADD COLUMN height INTEGER CHECK (height > 0),
    ADD COLUMN codec TEXT,
    ADD COLUMN thumbnail_key TEXT,
    ADD COLUMN updated_at TIMESTAMPTZ NOT NULL DEFAULT now();

DROP INDEX videos.videos_published_feed;
-- Keyset pagination of the public feed: newest ready public video first.
CREATE INDEX videos_public_feed ON videos.videos (created_at DESC, id DESC)
    WHERE status = 'ready' AND visibility = 'public';
CREATE INDEX videos_owner_feed ON videos.videos (owner_id, created_at DESC, id DESC);

-- The processing queue: claimed with FOR UPDATE SKIP LOCKED under a lease; a worker that
-- dies loses its lease and the job is claimed again. Done jobs are kept for a while, dead
-- ones (out of attempts) until someone looks.
CREATE TABLE videos.jobs (
    id           UUID PRIMARY KEY,
    video_id     UUID NOT NULL REFERENCES videos.videos (id) ON DELETE CASCADE,
    state        TEXT NOT NULL DEFAULT 'ready' CHECK (state IN ('ready', 'leased', 'done', 'dead')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL CHECK (max_attempts > 0),
    run_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    locked_until TIMESTAMPTZ,
    last_error   TEXT,
    -- The W3C trace context of the upload that queued it: processing joins that trace.
    traceparent  TEXT,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX jobs_due ON videos.jobs (run_at) WHERE state IN ('ready', 'leased');
CREATE INDEX jobs_video ON videos.jobs (video_id);
