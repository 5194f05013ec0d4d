DROP INDEX digests_scheduled;
ALTER TABLE digests DROP COLUMN scheduled_at;
ALTER TABLE digests DROP COLUMN archive;
