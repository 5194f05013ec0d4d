-- A digest is shown in the public archive (/archive, /archive.atom) once it begins sending,
-- unless staff left it out when they made it.
ALTER TABLE digests ADD COLUMN archive BOOLEAN NOT NULL DEFAULT TRUE;
-- A scheduled digest (status 'scheduled') is started by a worker at this time; one found more
-- than delivery.schedule_grace_minutes late becomes 'missed' instead.
ALTER TABLE digests ADD COLUMN scheduled_at TIMESTAMP;
CREATE INDEX digests_scheduled ON digests (status, scheduled_at);
