ALTER TABLE users.users
    ADD COLUMN password_hash TEXT,
    ADD COLUMN bio TEXT NOT NULL DEFAULT '' CHECK (char_length(bio) <= 500),
    ADD COLUMN avatar_url TEXT CHECK (avatar_url IS NULL OR char_length(avatar_url) <= 2048);

-- Refresh tokens are stored hashed (SHA-256): a database leak yields no usable token.
-- A family is one login's chain of rotations; reusing a rotated token revokes the family.
CREATE TABLE users.refresh_tokens (
    token_hash BYTEA PRIMARY KEY,
    family_id  UUID NOT NULL,
    user_id    UUID NOT NULL REFERENCES users.users (id) ON DELETE CASCADE,
    expires_at TIMESTAMPTZ NOT NULL,
    used_at    TIMESTAMPTZ,
    revoked_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX refresh_tokens_family ON users.refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user ON users.refresh_tokens (user_id);

CREATE TABLE users.follows (
    follower_id UUID NOT NULL REFERENCES users.users (id) ON DELETE CASCADE,
    followee_id UUID NOT NULL REFERENCES users.users (id) ON DELETE CASCADE,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (follower_id, followee_id),
    CHECK (follower_id <> followee_id)
);
-- Keyset pagination of both lists, newest follow first.
CREATE INDEX follows_followers ON users.follows (followee_id, created_at DESC, follower_id DESC);
CREATE INDEX follows_following ON users.follows (follower_id, created_at DESC, followee_id DESC);
