//! Putting mail in the queue. (A digest's mail is queued in one INSERT … SELECT by
//! [`crate::db::digests::queue_digest`].)

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::{confirmation_tokens, deliveries};
use crate::db::{DbConnection, now};
use crate::domain::{DeliveryKind, DeliveryStatus, Token};

/// A delivery to a subscriber: queued, or (handed to a worker) already leased under a claim.
#[derive(Insertable)]
#[diesel(table_name = deliveries, treat_none_as_default_value = false)]
struct NewDelivery<'a> {
    kind: &'a str,
    priority: i32,
    subscriber_id: Option<i64>,
    status: &'a str,
    attempts: i32,
    next_attempt_at: NaiveDateTime,
    lease_expires_at: Option<NaiveDateTime>,
    claim_id: Option<i64>,
    created_at: NaiveDateTime,
}

/// Queues one mail of `kind` to each subscriber, due now, in one statement.
pub fn enqueue_for_subscribers(
    conn: &mut DbConnection,
    kind: DeliveryKind,
    subscriber_ids: &[i64],
) -> QueryResult<usize> {
    if subscriber_ids.is_empty() {
        return Ok(0);
    }
    let now = now();
    let rows: Vec<NewDelivery<'_>> = subscriber_ids
        .iter()
        .map(|id| NewDelivery {
            kind: kind.as_str(),
            priority: kind.priority(),
            subscriber_id: Some(*id),
            status: DeliveryStatus::Queued.as_str(),
            attempts: 0,
            next_attempt_at: now,
            lease_expires_at: None,
            claim_id: None,
            created_at: now,
        })
        .collect();
    crate::on_backend!(conn, |c| diesel::insert_into(deliveries::table)
        .values(&rows)
        .execute(c))
}

/// Confirmations written already claimed, for the worker of this process to send (see
/// [`crate::delivery::Handoff`]): leased under one claim as [`super::claim_due_deliveries`]
/// would lease them, with their tokens' hashes stored.
pub struct HandTerms<'a> {
    /// How many of a batch's confirmations may be handed.
    pub room: usize,
    /// When they are written (the lease and the token's lifetime count from it).
    pub now: NaiveDateTime,
    pub claim_id: i64,
    pub lease_until: NaiveDateTime,
    pub token_expires_at: NaiveDateTime,
    /// What comes before and after the delivery id in a Message-ID
    /// ([`crate::email::Composer::message_id_around`]).
    pub message_id_around: &'a (String, String),
}

impl HandTerms<'_> {
    fn message_id(&self, delivery_id: i64) -> String {
        let (before, after) = self.message_id_around;
        format!("{before}{delivery_id}{after}")
    }
}

/// A confirmation written for the worker: what its mail needs.
#[derive(Debug)]
pub struct HandedConfirmation {
    pub delivery_id: i64,
    pub subscriber_id: i64,
    pub message_id: String,
    pub token: Token,
}

/// Writes one confirmation to each subscriber as `sending` under `terms`, counting its first
/// attempt, and stores each mail's confirmation token (its hash; the raw token is returned for
/// the mail). In the order of `subscriber_ids`.
///
/// On PostgreSQL one prepared statement ([`crate::db::prepared::HandConfirmations`]) draws the
/// ids and writes the rows, each once, with its Message-ID, and the tokens: this is on the path
/// of every signup, where each round trip to the database costs more than the writing. SQLite,
/// in-process, writes the Message-IDs after the rows.
pub fn hand_confirmations(
    conn: &mut DbConnection,
    subscriber_ids: &[i64],
    terms: &HandTerms<'_>,
) -> QueryResult<Vec<HandedConfirmation>> {
    if subscriber_ids.is_empty() {
        return Ok(Vec::new());
    }
    let now = terms.now;
    let kind = DeliveryKind::Confirmation;
    let tokens: Vec<Token> = subscriber_ids.iter().map(|_| Token::generate()).collect();
    let ids: Vec<i64> = match conn {
        DbConnection::Postgres(c) => {
            let written: Vec<(i64, i64)> = crate::db::prepared::HandConfirmations {
                subscriber_ids,
                token_hashes: tokens.iter().map(Token::hash).collect(),
                kind: kind.as_str(),
                priority: kind.priority(),
                status: DeliveryStatus::Sending.as_str(),
                now,
                lease_until: terms.lease_until,
                claim_id: terms.claim_id,
                message_id_around: terms.message_id_around,
                token_expires_at: terms.token_expires_at,
            }
            .load(c)?;
            let id_of: std::collections::HashMap<i64, i64> = written
                .into_iter()
                .map(|(id, subscriber_id)| (subscriber_id, id))
                .collect();
            subscriber_ids
                .iter()
                .map(|s| id_of.get(s).copied().ok_or(diesel::result::Error::NotFound))
                .collect::<QueryResult<_>>()?
        }
        DbConnection::Sqlite(c) => {
            let rows: Vec<NewDelivery<'_>> = subscriber_ids
                .iter()
                .map(|subscriber_id| NewDelivery {
                    kind: kind.as_str(),
                    priority: kind.priority(),
                    subscriber_id: Some(*subscriber_id),
                    status: DeliveryStatus::Sending.as_str(),
                    attempts: 1,
                    next_attempt_at: now,
                    lease_expires_at: Some(terms.lease_until),
                    claim_id: Some(terms.claim_id),
                    created_at: now,
                })
                .collect();
            let ids: Vec<i64> = diesel::insert_into(deliveries::table)
                .values(&rows)
                .returning(deliveries::id)
                .get_results(c)?;
            for id in &ids {
                diesel::update(deliveries::table.find(id))
                    .set(deliveries::message_id.eq(terms.message_id(*id)))
                    .execute(c)?;
            }
            let tokens: Vec<_> = subscriber_ids
                .iter()
                .zip(&tokens)
                .map(|(subscriber_id, token)| {
                    (
                        confirmation_tokens::subscriber_id.eq(*subscriber_id),
                        confirmation_tokens::token_hash.eq(token.hash()),
                        confirmation_tokens::created_at.eq(now),
                        confirmation_tokens::expires_at.eq(terms.token_expires_at),
                    )
                })
                .collect();
            diesel::insert_into(confirmation_tokens::table)
                .values(&tokens)
                .execute(c)?;
            ids
        }
    };
    Ok(ids
        .into_iter()
        .zip(subscriber_ids)
        .zip(tokens)
        .map(|((delivery_id, subscriber_id), token)| HandedConfirmation {
            delivery_id,
            subscriber_id: *subscriber_id,
            message_id: terms.message_id(delivery_id),
            token,
        })
        .collect())
}
