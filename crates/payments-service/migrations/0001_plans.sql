CREATE TABLE payments.subscription_plans (
    id          TEXT PRIMARY KEY CHECK (id ~ '^[a-z][a-z0-9_]{1,31}$'),
    name        TEXT NOT NULL,
    price_cents BIGINT NOT NULL CHECK (price_cents >= 0),
    currency    CHAR(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    interval    TEXT NOT NULL CHECK (interval IN ('month', 'year')),
    active      BOOLEAN NOT NULL DEFAULT TRUE
);

-- The plans on offer: a small fixed set (plan ids are a metric label).
INSERT INTO payments.subscription_plans (id, name, price_cents, currency, interval) VALUES
    ('free',           'Free',            0, 'USD', 'month'),
    ('basic',          'Basic',         499, 'USD', 'month'),
    ('premium',        'Premium',       999, 'USD', 'month'),
    ('premium_annual', 'Premium Annual', 9999, 'USD', 'year');
