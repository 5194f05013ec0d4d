ALTER TABLE subscribers ADD CONSTRAINT subscribers_email_key UNIQUE (email);
ALTER TABLE subscribers DROP CONSTRAINT subscribers_identity;
ALTER TABLE subscribers DROP COLUMN email_key;
DELETE FROM subscriber_events WHERE kind IN ('merged', 'complained');
ALTER TABLE subscriber_events DROP CONSTRAINT subscriber_events_kind_check;
ALTER TABLE subscriber_events ADD CONSTRAINT subscriber_events_kind_check
    CHECK (kind IN ('subscribed', 'confirmed', 'unsubscribed', 'bounced', 'erased'));
ALTER TABLE subscriber_events DROP COLUMN detail;
ALTER TABLE digests DROP COLUMN failure_streak;
ALTER TABLE digests DROP COLUMN status_reason;
UPDATE digests SET status = 'sent' WHERE status IN ('paused', 'cancelled', 'missed');
UPDATE digests SET status = 'draft' WHERE status = 'scheduled';
ALTER TABLE digests DROP CONSTRAINT digests_status_check;
ALTER TABLE digests ADD CONSTRAINT digests_status_check CHECK (status IN ('draft', 'sending', 'sent'));
DROP TABLE retired_unsubscribe_tokens;
DROP INDEX deliveries_digest_status;
CREATE INDEX deliveries_digest_status ON deliveries (digest_id, status);
ALTER TABLE deliveries DROP COLUMN failure;
ALTER TABLE deliveries DROP COLUMN claim_id;
