-- A digest's due mail, in the order it is claimed. Only queued rows are in it, so mail put off
-- to a later time (a retry, or a domain that asked us to slow down) is beyond the range a claim
-- reads instead of walked past by every claim, and sent rows leave it.
CREATE INDEX deliveries_digest_due ON deliveries (digest_id, next_attempt_at, id)
    WHERE status = 'queued';
