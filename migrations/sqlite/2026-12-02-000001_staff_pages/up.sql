-- Staff accounts for the pages under /admin: sign-in, sessions, a second factor, and a log
-- of who did what.

CREATE TABLE staff_members (
    id INTEGER PRIMARY KEY NOT NULL,
    email TEXT NOT NULL,
    -- The address in lower case: one account per address, whatever its letter case.
    email_key TEXT NOT NULL UNIQUE,
    name TEXT,
    -- Argon2id in PHC string form; NULL until the person has set a password.
    password_hash TEXT,
    -- SHA-256 of the one-time setup link's token, and until when it works.
    setup_token_hash TEXT UNIQUE,
    setup_expires_at TIMESTAMP,
    -- Base32 TOTP secret; NULL without a second factor.
    totp_secret TEXT,
    -- The time step of the last code used, so a code works once.
    totp_last_step BIGINT,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE staff_recovery_codes (
    id INTEGER PRIMARY KEY NOT NULL,
    staff_id BIGINT NOT NULL REFERENCES staff_members (id) ON DELETE CASCADE,
    code_hash TEXT NOT NULL,
    used_at TIMESTAMP
);
CREATE INDEX staff_recovery_codes_staff ON staff_recovery_codes (staff_id);

CREATE TABLE staff_sessions (
    id INTEGER PRIMARY KEY NOT NULL,
    staff_id BIGINT NOT NULL REFERENCES staff_members (id) ON DELETE CASCADE,
    -- SHA-256 of the cookie's value; the value itself is never stored.
    token_hash TEXT NOT NULL UNIQUE,
    csrf_token TEXT NOT NULL,
    -- Signed in with the password, still to give the second factor.
    second_factor_pending BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMP NOT NULL,
    last_seen_at TIMESTAMP NOT NULL,
    ip TEXT,
    user_agent TEXT
);
CREATE INDEX staff_sessions_staff ON staff_sessions (staff_id);

CREATE TABLE staff_activity (
    id INTEGER PRIMARY KEY NOT NULL,
    staff_id BIGINT REFERENCES staff_members (id) ON DELETE SET NULL,
    -- Who, in words that outlive the account ("Ann Lee <ann@clinic.org>", "token ci").
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    ip TEXT,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX staff_activity_created ON staff_activity (created_at);

-- Sent, failed and skipped of a digest whose send is over, computed once from its deliveries.
CREATE TABLE digest_totals (
    digest_id BIGINT PRIMARY KEY NOT NULL REFERENCES digests (id) ON DELETE CASCADE,
    sent BIGINT NOT NULL,
    failed BIGINT NOT NULL,
    skipped BIGINT NOT NULL,
    computed_at TIMESTAMP NOT NULL
);

-- The dashboard's signups and unsubscribes per day, and search by name.
CREATE INDEX subscriber_events_kind_created ON subscriber_events (kind, created_at);
CREATE INDEX subscribers_name_key ON subscribers (lower(name));

-- Each running worker says it is alive every few seconds; the dashboard warns when none has.
CREATE TABLE workers (
    id TEXT PRIMARY KEY NOT NULL,
    host TEXT NOT NULL,
    started_at TIMESTAMP NOT NULL,
    last_seen_at TIMESTAMP NOT NULL
);

-- Subscribers by status, kept by the database itself: every insert, delete and change of
-- status, by us or by any other tool, moves these counts in the same transaction, so the
-- dashboard reads four rows instead of counting a million. (PostgreSQL spreads each status
-- over shards, one per connection; SQLite has one writer and uses shard 0.)
CREATE TABLE subscriber_counts (
    status TEXT NOT NULL,
    shard INTEGER NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (status, shard)
);
INSERT INTO subscriber_counts (status, shard, n)
SELECT status, 0, count(*) FROM subscribers GROUP BY status;

CREATE TRIGGER subscriber_counts_insert AFTER INSERT ON subscribers
BEGIN
    INSERT INTO subscriber_counts (status, shard, n) VALUES (NEW.status, 0, 1)
    ON CONFLICT (status, shard) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER subscriber_counts_delete AFTER DELETE ON subscribers
BEGIN
    INSERT INTO subscriber_counts (status, shard, n) VALUES (OLD.status, 0, -1)
    ON CONFLICT (status, shard) DO UPDATE SET n = n - 1;
END;
CREATE TRIGGER subscriber_counts_update AFTER UPDATE OF status ON subscribers
WHEN OLD.status <> NEW.status
BEGIN
    INSERT INTO subscriber_counts (status, shard, n) VALUES (OLD.status, 0, -1)
    ON CONFLICT (status, shard) DO UPDATE SET n = n - 1;
    INSERT INTO subscriber_counts (status, shard, n) VALUES (NEW.status, 0, 1)
    ON CONFLICT (status, shard) DO UPDATE SET n = n + 1;
END;
