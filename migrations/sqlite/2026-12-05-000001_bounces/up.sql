-- Mail that came back (bounces, complaints, unsubscribe requests), as read by
-- `newsletter inbound process`: what it said of whom, kept as evidence, and to count soft
-- bounces (bounces.soft_limit within bounces.soft_window_days make a hard one).
CREATE TABLE bounce_reports (
    id INTEGER PRIMARY KEY NOT NULL,
    subscriber_id BIGINT REFERENCES subscribers (id) ON DELETE SET NULL,
    delivery_id BIGINT REFERENCES deliveries (id) ON DELETE SET NULL,
    class TEXT NOT NULL
        CHECK (class IN ('hard', 'soft', 'about-us', 'complaint', 'unsubscribe', 'ignore')),
    status TEXT,
    diagnostic TEXT NOT NULL,
    reporting_mta TEXT,
    -- How it was tied to the delivery: its VERP tag, or the recipient the message names.
    matched_by TEXT NOT NULL CHECK (matched_by IN ('tag', 'recipient', 'none')),
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX bounce_reports_subscriber ON bounce_reports (subscriber_id, class, created_at);
CREATE INDEX bounce_reports_delivery ON bounce_reports (delivery_id);

-- Keys the service makes for itself on first use, shared by every instance (the VERP tag's
-- HMAC key).
CREATE TABLE service_keys (
    name TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);
