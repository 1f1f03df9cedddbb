-- A double-entry ledger. Amounts are BIGINT minor units of an ISO 4217 currency; every
-- journal transaction's postings sum to zero per currency (a deferred constraint trigger
-- checks it at commit); posted rows can never change (triggers refuse UPDATE, DELETE and
-- TRUNCATE); each account's balance is kept in the same transaction as its postings.
--
-- Sign convention: a posting's amount is a debit when positive, a credit when negative.
-- provider_clearing (money the payment provider owes us) is debit-normal; platform_revenue,
-- creator_balance (what we owe a creator) and payouts_payable (payouts issued, not yet
-- settled by the bank) are credit-normal: their balances are negative when they hold money.

CREATE TABLE payments.accounts (
    id         UUID PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN
                   ('platform_revenue', 'creator_balance', 'provider_clearing', 'payouts_payable')),
    owner_id   UUID,
    currency   CHAR(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    balance    BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((kind = 'creator_balance') = (owner_id IS NOT NULL)),
    UNIQUE (id, currency)
);
CREATE UNIQUE INDEX accounts_one_per_kind ON payments.accounts
    (kind, coalesce(owner_id, '00000000-0000-0000-0000-000000000000'::uuid), currency);

CREATE TABLE payments.journal (
    id         UUID PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN
                   ('subscription_charge', 'ad_revenue', 'creator_share', 'payout', 'transfer')),
    reference  TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX journal_by_time ON payments.journal (created_at);

CREATE TABLE payments.postings (
    id         BIGSERIAL PRIMARY KEY,
    journal_id UUID NOT NULL REFERENCES payments.journal (id),
    account_id UUID NOT NULL,
    amount     BIGINT NOT NULL CHECK (amount <> 0),
    currency   CHAR(3) NOT NULL,
    FOREIGN KEY (account_id, currency) REFERENCES payments.accounts (id, currency)
);
CREATE INDEX postings_by_journal ON payments.postings (journal_id);
CREATE INDEX postings_by_account ON payments.postings (account_id);

-- Every transaction balances per currency, checked when it commits.
CREATE FUNCTION payments.check_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM payments.postings WHERE journal_id = NEW.journal_id
               GROUP BY currency HAVING sum(amount) <> 0) THEN
        RAISE EXCEPTION 'journal transaction % does not balance', NEW.journal_id
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER postings_balance AFTER INSERT ON payments.postings
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION payments.check_balanced();

-- Posted is posted: a mistake is corrected by a reversing transaction, never an edit.
CREATE FUNCTION payments.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'payments.% rows are immutable; post a reversing transaction', TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER journal_immutable BEFORE UPDATE OR DELETE ON payments.journal
    FOR EACH ROW EXECUTE FUNCTION payments.refuse_change();
CREATE TRIGGER journal_no_truncate BEFORE TRUNCATE ON payments.journal
    FOR EACH STATEMENT EXECUTE FUNCTION payments.refuse_change();
CREATE TRIGGER postings_immutable BEFORE UPDATE OR DELETE ON payments.postings
    FOR EACH ROW EXECUTE FUNCTION payments.refuse_change();
CREATE TRIGGER postings_no_truncate BEFORE TRUNCATE ON payments.postings
    FOR EACH STATEMENT EXECUTE FUNCTION payments.refuse_change();

-- Idempotency keys (Stripe's design): the first answer to (caller, key), stored in the same
-- transaction as the effects; kept `idempotency.retention_hours` (24 h).
CREATE TABLE payments.idempotency_keys (
    caller_id   UUID NOT NULL,
    key         TEXT NOT NULL,
    rpc         TEXT NOT NULL,
    fingerprint BYTEA NOT NULL,
    answer      JSONB NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (caller_id, key)
);
CREATE INDEX idempotency_keys_by_age ON payments.idempotency_keys (created_at);

CREATE TABLE payments.subscriptions (
    id                   UUID PRIMARY KEY,
    user_id              UUID NOT NULL,
    plan_id              TEXT NOT NULL REFERENCES payments.subscription_plans (id),
    status               TEXT NOT NULL CHECK (status IN ('active', 'canceled', 'past_due')),
    price_minor          BIGINT NOT NULL CHECK (price_minor >= 0),
    currency             CHAR(3) NOT NULL,
    payment_token        TEXT NOT NULL,
    last4                TEXT NOT NULL,
    current_period_start TIMESTAMPTZ NOT NULL,
    current_period_end   TIMESTAMPTZ NOT NULL,
    cancel_at_period_end BOOLEAN NOT NULL DEFAULT FALSE,
    renewals             INTEGER NOT NULL DEFAULT 0,
    created_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at           TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- One active subscription per user; a past_due one (its renewal was declined) has ended.
CREATE UNIQUE INDEX subscriptions_one_live ON payments.subscriptions (user_id)
    WHERE status = 'active';
CREATE INDEX subscriptions_due ON payments.subscriptions (current_period_end)
    WHERE status = 'active';

CREATE TABLE payments.ad_revenue (
    id          BIGSERIAL PRIMARY KEY,
    journal_id  UUID NOT NULL REFERENCES payments.journal (id),
    video_id    UUID NOT NULL,
    owner_id    UUID NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('impression', 'click')),
    amount      BIGINT NOT NULL CHECK (amount > 0),
    currency    CHAR(3) NOT NULL,
    occurred_at TIMESTAMPTZ NOT NULL
);

-- Creator payouts: each period once; what each creator earned in it, and what was paid.
CREATE TABLE payments.payout_periods (
    id           UUID PRIMARY KEY,
    period_start TIMESTAMPTZ NOT NULL,
    period_end   TIMESTAMPTZ NOT NULL UNIQUE,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE payments.earnings (
    period_id     UUID NOT NULL REFERENCES payments.payout_periods (id),
    creator_id    UUID NOT NULL,
    currency      CHAR(3) NOT NULL,
    amount        BIGINT NOT NULL CHECK (amount > 0),
    watch_seconds BIGINT NOT NULL,
    views         BIGINT NOT NULL,
    journal_id    UUID NOT NULL REFERENCES payments.journal (id),
    PRIMARY KEY (period_id, creator_id, currency)
);
CREATE INDEX earnings_by_creator ON payments.earnings (creator_id);
CREATE TABLE payments.payouts (
    id         UUID PRIMARY KEY,
    creator_id UUID NOT NULL,
    amount     BIGINT NOT NULL CHECK (amount > 0),
    currency   CHAR(3) NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('issued')),
    journal_id UUID NOT NULL REFERENCES payments.journal (id),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX payouts_by_creator ON payments.payouts (creator_id, created_at DESC);
-- Which payout period took each revenue transaction: every one is shared exactly once,
-- whenever it commits (a charge made while a period closes goes to the next one).
CREATE TABLE payments.revenue_claims (
    journal_id UUID PRIMARY KEY REFERENCES payments.journal (id),
    period_id  UUID NOT NULL REFERENCES payments.payout_periods (id)
);
-- Engagement totals per video at the end of the last period: the next period's share is
-- what was added since.
CREATE TABLE payments.engagement_snapshots (
    video_id      UUID PRIMARY KEY,
    views         BIGINT NOT NULL,
    watch_seconds DOUBLE PRECISION NOT NULL
);

-- The built-in sandbox payment provider's own records (what a real provider would keep on
-- its side): test cards by token, and charges by the caller's provider idempotency key.
-- A token is `pm_` and the first 24 hex digits of the card number's SHA-256: no card number
-- is stored anywhere.
CREATE TABLE payments.sandbox_cards (
    token    TEXT PRIMARY KEY,
    behavior TEXT NOT NULL CHECK (behavior IN ('succeed', 'decline', 'timeout_once')),
    last4    TEXT NOT NULL
);
INSERT INTO payments.sandbox_cards (token, behavior, last4)
SELECT 'pm_' || left(encode(sha256(convert_to(number, 'UTF8')), 'hex'), 24), behavior, right(number, 4)
FROM (VALUES ('4242424242424242', 'succeed'),
             ('4000000000000002', 'decline'),
             ('4000000000000119', 'timeout_once')) AS cards (number, behavior);
CREATE TABLE payments.sandbox_charges (
    idempotency_key TEXT PRIMARY KEY,
    id              UUID NOT NULL,
    token           TEXT NOT NULL,
    amount          BIGINT NOT NULL,
    currency        CHAR(3) NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('succeeded', 'declined')),
    attempts        INTEGER NOT NULL DEFAULT 1,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
