-- Sessions end at an absolute time however often they are rotated, and a rotated token
-- remembers its successor, so a client retrying a refresh whose answer it lost can be told
-- apart from a replayed copy.
ALTER TABLE users.refresh_tokens
    ADD COLUMN session_started_at TIMESTAMPTZ,
    ADD COLUMN replaced_by BYTEA;
UPDATE users.refresh_tokens t
SET session_started_at = f.started
FROM (SELECT family_id, min(created_at) AS started FROM users.refresh_tokens GROUP BY family_id) f
WHERE t.family_id = f.family_id;
ALTER TABLE users.refresh_tokens
    ALTER COLUMN session_started_at SET DEFAULT now(),
    ALTER COLUMN session_started_at SET NOT NULL;
