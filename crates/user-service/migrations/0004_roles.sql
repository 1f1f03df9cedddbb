-- Roles: `admin` unlocks the admin routes (payments' ad revenue, revenue summaries). Granted
-- in SQL only (make seed creates one admin); it travels in the access token.
ALTER TABLE users.users
    ADD COLUMN role TEXT NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin'));
