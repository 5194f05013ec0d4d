//! The delivery queue: one row per mail to send. Workers claim due rows with a lease, send, and
//! record the outcome; a lease that runs out (a crashed worker) puts the row back in the queue.

use std::collections::BTreeSet;

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;

use super::schema::{confirmation_tokens, deliveries, digests, subscribers};
use super::subscribers::{EventContext, insert_event};
use super::{DbConnection, now, write_tx};
use crate::domain::{
    DeliveryKind, DeliveryStatus, DigestStatus, EventKind, SubscriberStatus, Token,
};

#[derive(Insertable)]
#[diesel(table_name = deliveries, treat_none_as_default_value = false)]
struct NewDelivery<'a> {
    kind: &'a str,
    priority: i32,
    subscriber_id: Option<i64>,
    digest_id: Option<i64>,
    to_address: Option<&'a str>,
    status: &'a str,
    attempts: i32,
    next_attempt_at: NaiveDateTime,
    created_at: NaiveDateTime,
}

/// Queues one mail of `kind` to each subscriber, due now, in one statement.
pub fn enqueue_for_subscribers(
    conn: &mut DbConnection,
    kind: DeliveryKind,
    subscriber_ids: &[i64],
) -> QueryResult<usize> {
    let now = now();
    let rows: Vec<NewDelivery<'_>> = subscriber_ids
        .iter()
        .map(|id| NewDelivery {
            kind: kind.as_str(),
            priority: kind.priority(),
            subscriber_id: Some(*id),
            digest_id: None,
            to_address: None,
            status: DeliveryStatus::Queued.as_str(),
            attempts: 0,
            next_attempt_at: now,
            created_at: now,
        })
        .collect();
    crate::on_backend!(conn, |c| diesel::insert_into(deliveries::table)
        .values(&rows)
        .execute(c))
}

/// A delivery a worker holds the lease of, with the secrets its mail needs. The raw tokens
/// exist only here and in the mail; the database keeps their hashes.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub id: i64,
    pub kind: DeliveryKind,
    pub attempts: i32,
    pub subscriber_id: Option<i64>,
    pub digest_id: Option<i64>,
    pub email: String,
    pub name: Option<String>,
    pub message_id: String,
    pub confirm_token: Option<Token>,
    pub unsubscribe_token: Option<Token>,
}

#[derive(Queryable)]
struct DueRow {
    id: i64,
    kind: String,
    attempts: i32,
    subscriber_id: Option<i64>,
    digest_id: Option<i64>,
    to_address: Option<String>,
    email: Option<String>,
    name: Option<String>,
    status: Option<String>,
}

/// How long a claim holds a row, and how long a confirmation link lives.
#[derive(Debug, Clone, Copy)]
pub struct ClaimTerms {
    pub limit: i64,
    pub lease: Duration,
    pub token_ttl: Duration,
}

/// Claims up to `limit` due deliveries. Rows whose recipient no longer wants the mail are marked
/// `skipped` instead. PostgreSQL skips rows other workers hold (`FOR UPDATE SKIP LOCKED`);
/// SQLite has one writer, so its `BEGIN IMMEDIATE` already serializes claims.
pub fn claim_due_deliveries(
    conn: &mut DbConnection,
    terms: ClaimTerms,
    message_id_domain: &str,
) -> anyhow::Result<Vec<ClaimedDelivery>> {
    write_tx(conn, |conn| {
        let now = now();
        reclaim_expired_leases(conn, now)?;
        let due = deliveries::table
            .filter(deliveries::status.eq(DeliveryStatus::Queued.as_str()))
            .filter(deliveries::next_attempt_at.le(now))
            .order((
                deliveries::priority.asc(),
                deliveries::next_attempt_at.asc(),
                deliveries::id.asc(),
            ))
            .limit(terms.limit)
            .select(deliveries::id);
        let ids: Vec<i64> = match conn {
            DbConnection::Postgres(c) => due.for_update().skip_locked().load(c)?,
            DbConnection::Sqlite(c) => due.load(c)?,
        };
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<DueRow> = deliveries::table
            .left_join(subscribers::table)
            .filter(deliveries::id.eq_any(&ids))
            .order(deliveries::id.asc())
            .select((
                deliveries::id,
                deliveries::kind,
                deliveries::attempts,
                deliveries::subscriber_id,
                deliveries::digest_id,
                deliveries::to_address,
                subscribers::email.nullable(),
                subscribers::name.nullable(),
                subscribers::status.nullable(),
            ))
            .load(conn)?;

        let mut claimed = Vec::with_capacity(rows.len());
        let mut secrets = Vec::with_capacity(rows.len());
        let mut new_tokens = Vec::new();
        let mut skipped = Vec::new();
        let mut touched_digests = BTreeSet::new();
        for row in rows {
            let Some(kind) = DeliveryKind::parse(&row.kind) else {
                skipped.push(row.id);
                continue;
            };
            let wanted = match kind {
                DeliveryKind::Confirmation => {
                    row.status.as_deref() == Some(SubscriberStatus::Pending.as_str())
                }
                DeliveryKind::Welcome | DeliveryKind::Digest => {
                    row.status.as_deref() == Some(SubscriberStatus::Confirmed.as_str())
                }
                DeliveryKind::Test => row.to_address.is_some(),
            };
            let Some(email) = row
                .to_address
                .clone()
                .or(row.email.clone())
                .filter(|_| wanted)
            else {
                skipped.push(row.id);
                touched_digests.extend(row.digest_id);
                continue;
            };
            // Stable across retries, so a receiver can tell a repeat from a new mail.
            let message_id = format!("<{}.{}@{}>", kind.as_str(), row.id, message_id_domain);
            let mut delivery = ClaimedDelivery {
                id: row.id,
                kind,
                attempts: row.attempts + 1,
                subscriber_id: row.subscriber_id,
                digest_id: row.digest_id,
                email,
                name: row.name,
                message_id,
                confirm_token: None,
                unsubscribe_token: None,
            };
            let mut unsubscribe_hash = None;
            match (kind, row.subscriber_id) {
                (DeliveryKind::Confirmation, Some(subscriber_id)) => {
                    let token = Token::generate();
                    new_tokens.push((
                        confirmation_tokens::subscriber_id.eq(subscriber_id),
                        confirmation_tokens::token_hash.eq(token.hash()),
                        confirmation_tokens::created_at.eq(now),
                        confirmation_tokens::expires_at.eq(now + terms.token_ttl),
                    ));
                    delivery.confirm_token = Some(token);
                }
                (DeliveryKind::Welcome | DeliveryKind::Digest, Some(_)) => {
                    let token = Token::generate();
                    unsubscribe_hash = Some(token.hash());
                    delivery.unsubscribe_token = Some(token);
                }
                _ => {}
            }
            secrets.push((delivery.id, delivery.message_id.clone(), unsubscribe_hash));
            claimed.push(delivery);
        }
        if !new_tokens.is_empty() {
            // Multi-row inserts need the concrete backend.
            crate::on_backend!(&mut *conn, |c| diesel::insert_into(
                confirmation_tokens::table
            )
            .values(&new_tokens)
            .execute(c))?;
        }
        take_leases(conn, secrets, now + terms.lease)?;
        if !skipped.is_empty() {
            diesel::update(deliveries::table.filter(deliveries::id.eq_any(&skipped)))
                .set((
                    deliveries::status.eq(DeliveryStatus::Skipped.as_str()),
                    deliveries::lease_expires_at.eq(None::<NaiveDateTime>),
                ))
                .execute(conn)?;
            finish_digests_when_done(conn, &touched_digests, now)?;
        }
        Ok(claimed)
    })
}

/// Marks claimed rows `sending` under a lease, counts the attempt, and stores each row's
/// Message-ID and unsubscribe-token hash: one UPDATE per row version. PostgreSQL takes the
/// whole batch in one statement (a round trip per row would dominate a large send); SQLite is
/// in-process, where a statement per row inside the claim's transaction costs microseconds.
fn take_leases(
    conn: &mut DbConnection,
    secrets: Vec<(i64, String, Option<String>)>,
    lease_until: NaiveDateTime,
) -> QueryResult<()> {
    use diesel::sql_types::{Array, BigInt, Nullable, Text, Timestamp};
    match conn {
        DbConnection::Postgres(c) => {
            let mut ids = Vec::with_capacity(secrets.len());
            let mut message_ids = Vec::with_capacity(secrets.len());
            let mut hashes = Vec::with_capacity(secrets.len());
            for (id, message_id, hash) in secrets {
                ids.push(id);
                message_ids.push(message_id);
                hashes.push(hash);
            }
            diesel::sql_query(
                "UPDATE deliveries AS d SET status = 'sending', lease_expires_at = $4,
                     attempts = d.attempts + 1, message_id = v.message_id, unsubscribe_token_hash = v.hash
                 FROM (SELECT unnest($1) AS id, unnest($2) AS message_id, unnest($3) AS hash) AS v
                 WHERE d.id = v.id",
            )
            .bind::<Array<BigInt>, _>(ids)
            .bind::<Array<Text>, _>(message_ids)
            .bind::<Array<Nullable<Text>>, _>(hashes)
            .bind::<Timestamp, _>(lease_until)
            .execute(c)?;
        }
        DbConnection::Sqlite(_) => {
            for (id, message_id, hash) in secrets {
                diesel::update(deliveries::table.find(id))
                    .set((
                        deliveries::status.eq(DeliveryStatus::Sending.as_str()),
                        deliveries::lease_expires_at.eq(lease_until),
                        deliveries::attempts.eq(deliveries::attempts + 1),
                        deliveries::message_id.eq(message_id),
                        deliveries::unsubscribe_token_hash.eq(hash),
                    ))
                    .execute(conn)?;
            }
        }
    }
    Ok(())
}

/// Rows left `sending` by a worker that died go back to the queue.
fn reclaim_expired_leases(conn: &mut DbConnection, now: NaiveDateTime) -> QueryResult<usize> {
    let reclaimed = diesel::update(
        deliveries::table
            .filter(deliveries::status.eq(DeliveryStatus::Sending.as_str()))
            .filter(deliveries::lease_expires_at.lt(now)),
    )
    .set((
        deliveries::status.eq(DeliveryStatus::Queued.as_str()),
        deliveries::lease_expires_at.eq(None::<NaiveDateTime>),
    ))
    .execute(conn)?;
    if reclaimed > 0 {
        tracing::warn!(
            reclaimed,
            "took back deliveries whose lease ran out (a worker stopped mid-send)"
        );
    }
    Ok(reclaimed)
}

/// What happened to one claimed delivery.
#[derive(Debug, Clone)]
pub enum DeliveryOutcome {
    Sent {
        id: i64,
        digest_id: Option<i64>,
    },
    Retry {
        id: i64,
        error: String,
        next_attempt_at: NaiveDateTime,
    },
    Failed {
        id: i64,
        digest_id: Option<i64>,
        error: String,
        bounced_subscriber: Option<i64>,
    },
}

/// Records a batch of outcomes in one transaction, and marks digests whose queue is empty `sent`.
pub fn record_delivery_outcomes(
    conn: &mut DbConnection,
    outcomes: &[DeliveryOutcome],
) -> anyhow::Result<()> {
    if outcomes.is_empty() {
        return Ok(());
    }
    write_tx(conn, |conn| {
        let now = now();
        let mut sent = Vec::new();
        let mut digests_touched = BTreeSet::new();
        for outcome in outcomes {
            match outcome {
                DeliveryOutcome::Sent { id, digest_id } => {
                    sent.push(*id);
                    digests_touched.extend(*digest_id);
                }
                DeliveryOutcome::Retry {
                    id,
                    error,
                    next_attempt_at,
                } => {
                    diesel::update(deliveries::table.find(id))
                        .set((
                            deliveries::status.eq(DeliveryStatus::Queued.as_str()),
                            deliveries::next_attempt_at.eq(next_attempt_at),
                            deliveries::lease_expires_at.eq(None::<NaiveDateTime>),
                            deliveries::last_error.eq(error),
                        ))
                        .execute(conn)?;
                }
                DeliveryOutcome::Failed {
                    id,
                    digest_id,
                    error,
                    bounced_subscriber,
                } => {
                    diesel::update(deliveries::table.find(id))
                        .set((
                            deliveries::status.eq(DeliveryStatus::Failed.as_str()),
                            deliveries::lease_expires_at.eq(None::<NaiveDateTime>),
                            deliveries::last_error.eq(error),
                        ))
                        .execute(conn)?;
                    digests_touched.extend(*digest_id);
                    if let Some(subscriber_id) = bounced_subscriber {
                        mark_bounced(conn, *subscriber_id, now)?;
                    }
                }
            }
        }
        for chunk in sent.chunks(500) {
            diesel::update(deliveries::table.filter(deliveries::id.eq_any(chunk)))
                .set((
                    deliveries::status.eq(DeliveryStatus::Sent.as_str()),
                    deliveries::sent_at.eq(now),
                    deliveries::lease_expires_at.eq(None::<NaiveDateTime>),
                    deliveries::last_error.eq(None::<String>),
                ))
                .execute(conn)?;
        }
        finish_digests_when_done(conn, &digests_touched, now)?;
        Ok(())
    })
}

fn mark_bounced(
    conn: &mut DbConnection,
    subscriber_id: i64,
    now: NaiveDateTime,
) -> QueryResult<()> {
    let changed = diesel::update(
        subscribers::table
            .find(subscriber_id)
            .filter(subscribers::status.ne(SubscriberStatus::Bounced.as_str())),
    )
    .set((
        subscribers::status.eq(SubscriberStatus::Bounced.as_str()),
        subscribers::updated_at.eq(now),
    ))
    .execute(conn)?;
    if changed > 0 {
        let context = EventContext {
            source: "smtp".into(),
            ..EventContext::default()
        };
        insert_event(conn, subscriber_id, EventKind::Bounced, &context)?;
    }
    Ok(())
}

/// A digest is `sent` once none of its deliveries is queued or being sent.
///
/// On PostgreSQL the digest's row is locked first. Without it, two workers recording the last
/// outcomes at the same moment each saw the other's rows still `sending` (not yet committed)
/// and neither marked the digest sent: it stayed `sending` for good. With the lock the second
/// one waits for the first to commit, then sees every row done.
pub fn finish_digests_when_done(
    conn: &mut DbConnection,
    digest_ids: &BTreeSet<i64>,
    now: NaiveDateTime,
) -> QueryResult<()> {
    // Ascending ids (a BTreeSet), so two transactions lock digests in the same order.
    for digest_id in digest_ids {
        if let DbConnection::Postgres(c) = conn {
            let exists: Option<i64> = digests::table
                .find(digest_id)
                .select(digests::id)
                .for_update()
                .first(c)
                .optional()?;
            if exists.is_none() {
                continue;
            }
        }
        // One open row is enough to know: counting them all cost O(open rows) per batch.
        let open: Option<i64> = deliveries::table
            .filter(deliveries::digest_id.eq(digest_id))
            .filter(deliveries::status.eq_any([
                DeliveryStatus::Queued.as_str(),
                DeliveryStatus::Sending.as_str(),
            ]))
            .select(deliveries::id)
            .first(conn)
            .optional()?;
        if open.is_none() {
            diesel::update(
                digests::table
                    .find(digest_id)
                    .filter(digests::status.eq(DigestStatus::Sending.as_str())),
            )
            .set((
                digests::status.eq(DigestStatus::Sent.as_str()),
                digests::finished_at.eq(now),
            ))
            .execute(conn)?;
        }
    }
    Ok(())
}
