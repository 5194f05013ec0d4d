-- The queue keeps its promises, and one person is one subscriber whatever the letter case.
-- SQLite cannot change a CHECK in place: digests (with digest_articles, which refers to it)
-- and subscriber_events are rebuilt and copied.

-- Every claim has an id of its own. An outcome is written only while the row is still held by
-- the claim that sent it, so a worker that lost its lease cannot undo a newer result.
ALTER TABLE deliveries ADD COLUMN claim_id BIGINT;
-- Why a delivery failed: the mailbox does not exist (bounce), something about the recipient
-- (recipient), a refusal that is about us or our mail (sender), or our side could not build it
-- (local). Resuming a digest tries the `sender` failures again.
ALTER TABLE deliveries ADD COLUMN failure TEXT
    CHECK (failure IN ('bounce', 'recipient', 'sender', 'local'));
-- (deliveries_digest_status on (digest_id, status) already ends in the rowid here, so digest
-- claims read it in id order as they are on PostgreSQL.)

-- A delivery sent again (its 250 lost, or its worker killed) carries a new unsubscribe token;
-- the hashes of the earlier ones stay here so that every copy that left keeps a working link.
CREATE TABLE retired_unsubscribe_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,
    delivery_id BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX retired_unsubscribe_tokens_delivery ON retired_unsubscribe_tokens (delivery_id);

-- Digests can be paused, resumed and cancelled, and say why they are paused; permanent
-- failures in a row that are about us count towards delivery.pause_after_failures.
CREATE TABLE digests_new (
    id INTEGER PRIMARY KEY NOT NULL,
    subject TEXT NOT NULL,
    intro TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL
        CHECK (status IN ('draft', 'scheduled', 'sending', 'paused', 'cancelled', 'missed', 'sent')),
    recipients BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL,
    started_at TIMESTAMP,
    finished_at TIMESTAMP,
    status_reason TEXT,
    failure_streak INTEGER NOT NULL DEFAULT 0
);
INSERT INTO digests_new (id, subject, intro, status, recipients, created_at, started_at, finished_at)
SELECT id, subject, intro, status, recipients, created_at, started_at, finished_at FROM digests;
CREATE TABLE digest_articles_new (
    digest_id BIGINT NOT NULL REFERENCES digests_new (id) ON DELETE CASCADE,
    article_id BIGINT NOT NULL REFERENCES articles (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    PRIMARY KEY (digest_id, article_id)
);
INSERT INTO digest_articles_new (digest_id, article_id, position)
SELECT digest_id, article_id, position FROM digest_articles;
DROP TABLE digest_articles;
DROP TABLE digests;
-- Renaming also points digest_articles' foreign key at the new digests.
ALTER TABLE digests_new RENAME TO digests;
ALTER TABLE digest_articles_new RENAME TO digest_articles;

-- The ledger names its evidence (the consent text of an import, the bounce, the merge).
CREATE TABLE subscriber_events_new (
    id INTEGER PRIMARY KEY NOT NULL,
    subscriber_id BIGINT REFERENCES subscribers (id) ON DELETE SET NULL,
    kind TEXT NOT NULL
        CHECK (kind IN ('subscribed', 'confirmed', 'unsubscribed', 'bounced', 'erased', 'merged', 'complained')),
    ip TEXT,
    user_agent TEXT,
    source TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    detail TEXT
);
INSERT INTO subscriber_events_new (id, subscriber_id, kind, ip, user_agent, source, created_at)
SELECT id, subscriber_id, kind, ip, user_agent, source, created_at FROM subscriber_events;
DROP TABLE subscriber_events;
ALTER TABLE subscriber_events_new RENAME TO subscriber_events;
CREATE INDEX subscriber_events_subscriber ON subscriber_events (subscriber_id);

-- The identity of a subscriber: the address with its ASCII letters in lower case (the domain
-- is stored lower-cased already). SQLite's lower() folds ASCII only, as the key wants.
ALTER TABLE subscribers ADD COLUMN email_key TEXT NOT NULL DEFAULT '';
UPDATE subscribers SET email_key = lower(email);

-- Records that differ only in case are one person: merged into the earliest (the first
-- consent), everything they own moves there, and the merge is written in the ledger.
CREATE TEMPORARY TABLE merge_members AS
SELECT s.id AS member_id,
       (SELECT k.id FROM subscribers k WHERE k.email_key = s.email_key
        ORDER BY k.created_at, k.id LIMIT 1) AS keeper_id
FROM subscribers s
WHERE s.email_key IN (SELECT email_key FROM subscribers GROUP BY email_key HAVING count(*) > 1);

-- Their status is what signing up again would have made it: the latest one, except that a
-- pending signup does not undo a confirmation. Consent is the earliest.
UPDATE subscribers SET
    status = CASE
        WHEN (SELECT s.status FROM subscribers s WHERE s.email_key = subscribers.email_key
              ORDER BY s.updated_at DESC, s.id DESC LIMIT 1) = 'pending'
         AND (SELECT s.status FROM subscribers s WHERE s.email_key = subscribers.email_key AND s.status <> 'pending'
              ORDER BY s.updated_at DESC, s.id DESC LIMIT 1) = 'confirmed'
        THEN 'confirmed'
        ELSE (SELECT s.status FROM subscribers s WHERE s.email_key = subscribers.email_key
              ORDER BY s.updated_at DESC, s.id DESC LIMIT 1)
    END,
    name = COALESCE(name,
        (SELECT s.name FROM subscribers s WHERE s.email_key = subscribers.email_key AND s.name IS NOT NULL
         ORDER BY s.updated_at DESC, s.id DESC LIMIT 1)),
    confirmed_at = (SELECT min(s.confirmed_at) FROM subscribers s WHERE s.email_key = subscribers.email_key),
    unsubscribed_at = (SELECT max(s.unsubscribed_at) FROM subscribers s WHERE s.email_key = subscribers.email_key),
    updated_at = (SELECT max(s.updated_at) FROM subscribers s WHERE s.email_key = subscribers.email_key)
WHERE id IN (SELECT keeper_id FROM merge_members);
UPDATE subscribers SET unsubscribed_at = NULL
WHERE id IN (SELECT keeper_id FROM merge_members) AND status <> 'unsubscribed';

INSERT INTO subscriber_events (subscriber_id, kind, source, detail, created_at)
SELECT m.keeper_id, 'merged', 'migration',
       'merged ' || count(*) || ' records of one address that differed only in letter case: '
           || group_concat(s.email, ', ' ORDER BY s.created_at, s.id),
       strftime('%Y-%m-%d %H:%M:%f', 'now')
FROM merge_members m JOIN subscribers s ON s.id = m.member_id
GROUP BY m.keeper_id;

UPDATE subscriber_events SET subscriber_id =
    (SELECT keeper_id FROM merge_members WHERE member_id = subscriber_events.subscriber_id)
WHERE subscriber_id IN (SELECT member_id FROM merge_members WHERE member_id <> keeper_id);
UPDATE confirmation_tokens SET subscriber_id =
    (SELECT keeper_id FROM merge_members WHERE member_id = confirmation_tokens.subscriber_id)
WHERE subscriber_id IN (SELECT member_id FROM merge_members WHERE member_id <> keeper_id);
-- A digest that reached two of the records is kept once (the earlier delivery).
DELETE FROM deliveries
WHERE digest_id IS NOT NULL AND EXISTS (
    SELECT 1 FROM merge_members a
    JOIN merge_members b ON b.keeper_id = a.keeper_id
    JOIN deliveries o ON o.subscriber_id = b.member_id AND o.digest_id = deliveries.digest_id
    WHERE a.member_id = deliveries.subscriber_id AND o.id < deliveries.id);
UPDATE deliveries SET subscriber_id =
    (SELECT keeper_id FROM merge_members WHERE member_id = deliveries.subscriber_id)
WHERE subscriber_id IN (SELECT member_id FROM merge_members WHERE member_id <> keeper_id);
DELETE FROM subscribers WHERE id IN (SELECT member_id FROM merge_members WHERE member_id <> keeper_id);
DROP TABLE merge_members;

CREATE UNIQUE INDEX subscribers_identity ON subscribers (email_key);
