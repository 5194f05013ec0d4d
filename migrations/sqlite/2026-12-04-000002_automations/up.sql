-- Digests that make themselves: an automation polls a feed on a schedule (5-field crontab,
-- read in site.timezone), imports its new items, and makes a digest of them that it either
-- leaves as a draft for staff to review or sends.
CREATE TABLE automations (
    id INTEGER PRIMARY KEY NOT NULL,
    feed_url TEXT NOT NULL,
    schedule TEXT NOT NULL,
    -- A template: "Latest research: {{ date }}".
    subject TEXT NOT NULL,
    mode TEXT NOT NULL CHECK (mode IN ('draft', 'send')),
    -- Who gets "ready for review", comma-separated; NULL: every staff account.
    notify TEXT,
    -- What the feed's server said last time, for a conditional GET (304: nothing new).
    etag TEXT,
    last_modified TEXT,
    -- The next time it is due (UTC). A run is taken by moving this on, so of several
    -- instances, one runs it.
    next_run_at TIMESTAMP NOT NULL,
    last_run_at TIMESTAMP,
    -- What the last run did, in words for staff.
    last_outcome TEXT,
    last_digest_id BIGINT REFERENCES digests (id) ON DELETE SET NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX automations_due ON automations (next_run_at);
