-- The queue keeps its promises, and one person is one subscriber whatever the letter case.

-- Every claim has an id of its own. An outcome is written only while the row is still held by
-- the claim that sent it, so a worker that lost its lease cannot undo a newer result.
ALTER TABLE deliveries ADD COLUMN claim_id BIGINT;
-- Why a delivery failed: the mailbox does not exist (bounce), something about the recipient
-- (recipient), a refusal that is about us or our mail (sender), or our side could not build it
-- (local). Resuming a digest tries the `sender` failures again.
ALTER TABLE deliveries ADD COLUMN failure TEXT
    CHECK (failure IN ('bounce', 'recipient', 'sender', 'local'));
-- Digests are claimed one digest at a time in id order, so the rows of a paused digest are
-- never walked past.
DROP INDEX deliveries_digest_status;
CREATE INDEX deliveries_digest_status ON deliveries (digest_id, status, id);

-- A delivery sent again (its 250 lost, or its worker killed) carries a new unsubscribe token;
-- the hashes of the earlier ones stay here so that every copy that left keeps a working link.
CREATE TABLE retired_unsubscribe_tokens (
    token_hash TEXT PRIMARY KEY,
    delivery_id BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX retired_unsubscribe_tokens_delivery ON retired_unsubscribe_tokens (delivery_id);

-- Digests can be paused, resumed and cancelled, and say why they are paused.
ALTER TABLE digests DROP CONSTRAINT digests_status_check;
ALTER TABLE digests ADD CONSTRAINT digests_status_check
    CHECK (status IN ('draft', 'scheduled', 'sending', 'paused', 'cancelled', 'missed', 'sent'));
ALTER TABLE digests ADD COLUMN status_reason TEXT;
-- Permanent failures in a row that are about us, not the recipients: at
-- delivery.pause_after_failures the digest pauses itself.
ALTER TABLE digests ADD COLUMN failure_streak INTEGER NOT NULL DEFAULT 0;

-- The ledger names its evidence (the consent text of an import, the bounce, the merge).
ALTER TABLE subscriber_events ADD COLUMN detail TEXT;
ALTER TABLE subscriber_events DROP CONSTRAINT subscriber_events_kind_check;
ALTER TABLE subscriber_events ADD CONSTRAINT subscriber_events_kind_check
    CHECK (kind IN ('subscribed', 'confirmed', 'unsubscribed', 'bounced', 'erased', 'merged', 'complained'));

-- The identity of a subscriber: the address with its ASCII letters in lower case (the domain
-- is stored lower-cased already). translate() rather than lower(): lower() follows the
-- database's locale, and the key must be the same on every backend and in Rust.
ALTER TABLE subscribers ADD COLUMN email_key TEXT NOT NULL DEFAULT '';
UPDATE subscribers SET email_key = translate(email, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz');

-- Records that differ only in case are one person: merged into the earliest (the first
-- consent), everything they own moves there, and the merge is written in the ledger.
CREATE TEMPORARY TABLE merge_members ON COMMIT DROP AS
SELECT s.id AS member_id,
       (SELECT k.id FROM subscribers k WHERE k.email_key = s.email_key
        ORDER BY k.created_at, k.id LIMIT 1) AS keeper_id
FROM subscribers s
WHERE s.email_key IN (SELECT email_key FROM subscribers GROUP BY email_key HAVING count(*) > 1);

-- Their status is what signing up again would have made it: the latest one, except that a
-- pending signup does not undo a confirmation. Consent is the earliest.
UPDATE subscribers AS k SET
    status = CASE
        WHEN (SELECT s.status FROM subscribers s WHERE s.email_key = k.email_key
              ORDER BY s.updated_at DESC, s.id DESC LIMIT 1) = 'pending'
         AND (SELECT s.status FROM subscribers s WHERE s.email_key = k.email_key AND s.status <> 'pending'
              ORDER BY s.updated_at DESC, s.id DESC LIMIT 1) = 'confirmed'
        THEN 'confirmed'
        ELSE (SELECT s.status FROM subscribers s WHERE s.email_key = k.email_key
              ORDER BY s.updated_at DESC, s.id DESC LIMIT 1)
    END,
    name = COALESCE(k.name,
        (SELECT s.name FROM subscribers s WHERE s.email_key = k.email_key AND s.name IS NOT NULL
         ORDER BY s.updated_at DESC, s.id DESC LIMIT 1)),
    confirmed_at = (SELECT min(s.confirmed_at) FROM subscribers s WHERE s.email_key = k.email_key),
    unsubscribed_at = (SELECT max(s.unsubscribed_at) FROM subscribers s WHERE s.email_key = k.email_key),
    updated_at = (SELECT max(s.updated_at) FROM subscribers s WHERE s.email_key = k.email_key)
WHERE k.id IN (SELECT keeper_id FROM merge_members);
UPDATE subscribers SET unsubscribed_at = NULL
WHERE id IN (SELECT keeper_id FROM merge_members) AND status <> 'unsubscribed';

INSERT INTO subscriber_events (subscriber_id, kind, source, detail, created_at)
SELECT m.keeper_id, 'merged', 'migration',
       'merged ' || count(*) || ' records of one address that differed only in letter case: '
           || string_agg(s.email, ', ' ORDER BY s.created_at, s.id),
       now() AT TIME ZONE 'utc'
FROM merge_members m JOIN subscribers s ON s.id = m.member_id
GROUP BY m.keeper_id;

UPDATE subscriber_events SET subscriber_id = m.keeper_id
FROM merge_members m WHERE subscriber_events.subscriber_id = m.member_id AND m.member_id <> m.keeper_id;
UPDATE confirmation_tokens SET subscriber_id = m.keeper_id
FROM merge_members m WHERE confirmation_tokens.subscriber_id = m.member_id AND m.member_id <> m.keeper_id;
-- A digest that reached two of the records is kept once (the earlier delivery).
DELETE FROM deliveries d
WHERE d.digest_id IS NOT NULL AND EXISTS (
    SELECT 1 FROM merge_members a
    JOIN merge_members b ON b.keeper_id = a.keeper_id
    JOIN deliveries o ON o.subscriber_id = b.member_id AND o.digest_id = d.digest_id
    WHERE a.member_id = d.subscriber_id AND o.id < d.id);
UPDATE deliveries SET subscriber_id = m.keeper_id
FROM merge_members m WHERE deliveries.subscriber_id = m.member_id AND m.member_id <> m.keeper_id;
DELETE FROM subscribers WHERE id IN (SELECT member_id FROM merge_members WHERE member_id <> keeper_id);

ALTER TABLE subscribers ALTER COLUMN email_key DROP DEFAULT;
ALTER TABLE subscribers ADD CONSTRAINT subscribers_identity UNIQUE (email_key);
-- Unique keys make unique addresses; one index fewer to keep up on every signup.
ALTER TABLE subscribers DROP CONSTRAINT subscribers_email_key;
