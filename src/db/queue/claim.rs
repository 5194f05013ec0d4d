//! Claiming due deliveries under a lease, with the secrets their mail needs.

use std::collections::BTreeSet;

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;

use super::finish_digests_when_done;
use crate::db::schema::{confirmation_tokens, deliveries, subscribers};
use crate::db::{DbConnection, now, write_tx};
use crate::domain::{DeliveryKind, DeliveryStatus, SubscriberStatus, Token};

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
