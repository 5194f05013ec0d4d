DROP INDEX deliveries_digest_due;
