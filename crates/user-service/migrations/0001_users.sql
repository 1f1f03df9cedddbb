CREATE TABLE users.users (
    id           UUID PRIMARY KEY,
    email        TEXT NOT NULL,
    username     TEXT NOT NULL,
    display_name TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Unique regardless of letter case: Ann@x.io and ann@x.io are one address.
CREATE UNIQUE INDEX users_email_key ON users.users (lower(email));
CREATE UNIQUE INDEX users_username_key ON users.users (lower(username));
