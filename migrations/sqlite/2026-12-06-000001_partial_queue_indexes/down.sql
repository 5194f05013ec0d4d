DROP INDEX deliveries_digest_status;
CREATE INDEX deliveries_digest_status ON deliveries (digest_id, status);
DROP INDEX deliveries_sending;
DROP INDEX deliveries_due;
CREATE INDEX deliveries_due ON deliveries (status, priority, next_attempt_at, id);
