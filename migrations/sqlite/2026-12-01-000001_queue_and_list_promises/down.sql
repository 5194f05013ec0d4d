DROP INDEX subscribers_identity;
ALTER TABLE subscribers DROP COLUMN email_key;
CREATE TABLE subscriber_events_old (
    id INTEGER PRIMARY KEY NOT NULL,
    subscriber_id BIGINT REFERENCES subscribers (id) ON DELETE SET NULL,
    kind TEXT NOT NULL CHECK (kind IN ('subscribed', 'confirmed', 'unsubscribed', 'bounced', 'erased')),
    ip TEXT,
    user_agent TEXT,
    source TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
INSERT INTO subscriber_events_old (id, subscriber_id, kind, ip, user_agent, source, created_at)
SELECT id, subscriber_id, kind, ip, user_agent, source, created_at FROM subscriber_events
WHERE kind NOT IN ('merged', 'complained');
DROP TABLE subscriber_events;
ALTER TABLE subscriber_events_old RENAME TO subscriber_events;
CREATE INDEX subscriber_events_subscriber ON subscriber_events (subscriber_id);
CREATE TABLE digests_old (
    id INTEGER PRIMARY KEY NOT NULL,
    subject TEXT NOT NULL,
    intro TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL CHECK (status IN ('draft', 'sending', 'sent')),
    recipients BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL,
    started_at TIMESTAMP,
    finished_at TIMESTAMP
);
INSERT INTO digests_old (id, subject, intro, status, recipients, created_at, started_at, finished_at)
SELECT id, subject, intro,
       CASE WHEN status IN ('paused', 'cancelled', 'missed') THEN 'sent'
            WHEN status = 'scheduled' THEN 'draft' ELSE status END,
       recipients, created_at, started_at, finished_at FROM digests;
CREATE TABLE digest_articles_old (
    digest_id BIGINT NOT NULL REFERENCES digests_old (id) ON DELETE CASCADE,
    article_id BIGINT NOT NULL REFERENCES articles (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    PRIMARY KEY (digest_id, article_id)
);
INSERT INTO digest_articles_old SELECT digest_id, article_id, position FROM digest_articles;
DROP TABLE digest_articles;
DROP TABLE digests;
ALTER TABLE digests_old RENAME TO digests;
ALTER TABLE digest_articles_old RENAME TO digest_articles;
DROP TABLE retired_unsubscribe_tokens;
ALTER TABLE deliveries DROP COLUMN failure;
ALTER TABLE deliveries DROP COLUMN claim_id;
