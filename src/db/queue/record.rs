//! Writing back what happened to claimed deliveries. Every write is fenced: it applies only
//! while the row is still `sending` under the claim that sent it. A worker that lost its lease
//! (a paused process, a relay slower than the lease) finds its late outcome discarded instead
//! of re-queuing a row another worker sent, or failing one that went out.
//!
//! The same transaction keeps each digest's run of sender-side failures, pauses the digest when
//! the run reaches `pause_after_failures`, marks finished digests `sent`, and reads back the
//! status of every digest it touched, so the worker learns of a pause made elsewhere.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDateTime;
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::Text;

use super::{BACK_TO_QUEUE, finish_digests_when_done};
use crate::db::events::{EventContext, insert_event};
use crate::db::schema::{deliveries, digests, subscribers};
use crate::db::{DbConnection, now, write_tx};
use crate::domain::{DeliveryStatus, DigestStatus, EventKind, FailureKind, SubscriberStatus};

/// What became of one claimed delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Sent,
    /// Not delivered this time; due again at `at`.
    Retry {
        at: NaiveDateTime,
        error: String,
    },
    Failed {
        failure: FailureKind,
        error: String,
    },
    /// Handed back unsent (the digest paused, the worker stopping): the attempt does not count.
    Released,
}

/// An outcome with the claim it belongs to.
#[derive(Debug, Clone)]
pub struct Finished {
    pub id: i64,
    pub claim_id: i64,
    pub digest_id: Option<i64>,
    pub subscriber_id: Option<i64>,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, Copy)]
pub struct RecordTerms {
    /// Sender-side failures in a row that pause a digest; 0 never pauses.
    pub pause_after_failures: u32,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct RecordReport {
    /// Outcomes discarded because the row was no longer held by their claim.
    pub stale: usize,
    /// The status of every digest the batch touched, after it.
    pub digests: Vec<(i64, DigestStatus)>,
}

/// Records a batch of outcomes in one transaction.
///
/// On PostgreSQL the commit does not wait for the WAL to reach the disk (`synchronous_commit =
/// off` for this transaction only). A crashed worker loses nothing by it; a crash of PostgreSQL
/// itself can lose the last fraction of a second of outcomes, and those mails then go out a
/// second time, none is lost. Waiting for the disk (about 6.5 ms a commit on the project
/// machine) would cap a worker at a few hundred recorded outcomes a second.
pub fn record_outcomes(
    conn: &mut DbConnection,
    batch: &[Finished],
    terms: &RecordTerms,
) -> anyhow::Result<RecordReport> {
    if batch.is_empty() {
        return Ok(RecordReport::default());
    }
    write_tx(conn, |conn| {
        if let DbConnection::Postgres(c) = conn {
            diesel::sql_query("SET LOCAL synchronous_commit = off").execute(c)?;
        }
        let now = now();
        let applied = apply(conn, batch, now)?;
        let mut digests_touched = BTreeSet::new();
        let mut runs: BTreeMap<i64, Vec<&Outcome>> = BTreeMap::new();
        for (finished, applied) in batch.iter().zip(&applied) {
            let Some(digest_id) = finished.digest_id else {
                continue;
            };
            digests_touched.insert(digest_id);
            if *applied {
                runs.entry(digest_id).or_default().push(&finished.outcome);
            }
        }
        for (digest_id, outcomes) in runs {
            count_sender_failures(conn, digest_id, &outcomes, terms, now)?;
        }
        finish_digests_when_done(conn, &digests_touched, now)?;
        let statuses: Vec<(i64, String)> = digests::table
            .filter(digests::id.eq_any(&digests_touched))
            .select((digests::id, digests::status))
            .load(conn)?;
        Ok(RecordReport {
            stale: applied.iter().filter(|a| !**a).count(),
            digests: statuses
                .into_iter()
                .filter_map(|(id, status)| DigestStatus::parse(&status).map(|s| (id, s)))
                .collect(),
        })
    })
}

/// Writes each outcome under its fence; whether it applied, in batch order.
fn apply(
    conn: &mut DbConnection,
    batch: &[Finished],
    now: NaiveDateTime,
) -> anyhow::Result<Vec<bool>> {
    let sending = DeliveryStatus::Sending.as_str();
    let mut applied = vec![false; batch.len()];
    // The common case, sent mail, one statement per claim (a batch holds few claims).
    let mut sent: BTreeMap<i64, Vec<(usize, i64)>> = BTreeMap::new();
    for (index, finished) in batch.iter().enumerate() {
        if finished.outcome == Outcome::Sent {
            sent.entry(finished.claim_id)
                .or_default()
                .push((index, finished.id));
        }
    }
    for (claim_id, items) in sent {
        for chunk in items.chunks(500) {
            let ids: Vec<i64> = chunk.iter().map(|(_, id)| *id).collect();
            let target = deliveries::table
                .filter(deliveries::claim_id.eq(claim_id))
                .filter(deliveries::status.eq(sending))
                .filter(deliveries::id.eq_any(&ids));
            let done: Vec<i64> = crate::on_backend!(&mut *conn, |c| diesel::update(target)
                .set((
                    deliveries::status.eq(DeliveryStatus::Sent.as_str()),
                    deliveries::sent_at.eq(now),
                    deliveries::lease_expires_at.eq(None::<NaiveDateTime>),
                    deliveries::last_error.eq(None::<String>),
                ))
                .returning(deliveries::id)
                .get_results(c))?;
            for (index, id) in chunk {
                applied[*index] = done.contains(id);
            }
        }
    }
    for (index, finished) in batch.iter().enumerate() {
        let target = deliveries::table
            .filter(deliveries::id.eq(finished.id))
            .filter(deliveries::claim_id.eq(finished.claim_id))
            .filter(deliveries::status.eq(sending));
        let changed = match &finished.outcome {
            Outcome::Sent => continue,
            Outcome::Retry { at, error } => diesel::update(target)
                .set((
                    deliveries::status.eq(sql::<Text>(BACK_TO_QUEUE)),
                    deliveries::next_attempt_at.eq(at),
                    deliveries::lease_expires_at.eq(None::<NaiveDateTime>),
                    deliveries::last_error.eq(error),
                ))
                .execute(conn)?,
            Outcome::Failed { failure, error } => {
                let changed = diesel::update(target)
                    .set((
                        deliveries::status.eq(DeliveryStatus::Failed.as_str()),
                        deliveries::failure.eq(failure.as_str()),
                        deliveries::lease_expires_at.eq(None::<NaiveDateTime>),
                        deliveries::last_error.eq(error),
                    ))
                    .execute(conn)?;
                if let (1, FailureKind::Bounce, Some(subscriber_id)) =
                    (changed, failure, finished.subscriber_id)
                {
                    mark_bounced(conn, subscriber_id, error, now)?;
                }
                changed
            }
            // The copy never left: its token is forgotten, not retired.
            Outcome::Released => diesel::update(target)
                .set((
                    deliveries::status.eq(sql::<Text>(BACK_TO_QUEUE)),
                    deliveries::attempts.eq(deliveries::attempts - 1),
                    deliveries::unsubscribe_token_hash.eq(None::<String>),
                    deliveries::lease_expires_at.eq(None::<NaiveDateTime>),
                    deliveries::claim_id.eq(None::<i64>),
                ))
                .execute(conn)?,
        };
        applied[index] = changed == 1;
    }
    Ok(applied)
}

fn mark_bounced(
    conn: &mut DbConnection,
    subscriber_id: i64,
    evidence: &str,
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
        let context = EventContext::from_source("smtp").with_detail(evidence);
        insert_event(conn, subscriber_id, EventKind::Bounced, &context)?;
    }
    Ok(())
}

/// Keeps the digest's run of sender-side failures (a sent mail ends it) and pauses the digest
/// when the run is long enough: a relay refusing us fails every reader alike, and nobody
/// should find out after the whole list was tried.
fn count_sender_failures(
    conn: &mut DbConnection,
    digest_id: i64,
    outcomes: &[&Outcome],
    terms: &RecordTerms,
    now: NaiveDateTime,
) -> QueryResult<()> {
    let before: i32 = digests::table
        .find(digest_id)
        .select(digests::failure_streak)
        .first(conn)?;
    let mut streak = before;
    let mut last_refusal = None;
    for outcome in outcomes {
        match outcome {
            Outcome::Sent => streak = 0,
            Outcome::Failed {
                failure: FailureKind::Sender,
                error,
            } => {
                streak += 1;
                last_refusal = Some(error.as_str());
            }
            _ => {}
        }
    }
    if streak == before {
        return Ok(());
    }
    diesel::update(digests::table.find(digest_id))
        .set(digests::failure_streak.eq(streak))
        .execute(conn)?;
    let limit = terms.pause_after_failures;
    if limit == 0 || streak < limit as i32 {
        return Ok(());
    }
    let reason = format!(
        "paused automatically at {}: {streak} mails in a row were refused for reasons about \
         the sender, not the recipients (the last answer: {}). Fix the mail relay or the \
         sending address, then resume: the refused mails are tried again.",
        now.format("%Y-%m-%d %H:%M UTC"),
        crate::domain::mask_addresses_in(last_refusal.unwrap_or("none")),
    );
    diesel::update(
        digests::table
            .find(digest_id)
            .filter(digests::status.eq(DigestStatus::Sending.as_str())),
    )
    .set((
        digests::status.eq(DigestStatus::Paused.as_str()),
        digests::status_reason.eq(reason),
    ))
    .execute(conn)?;
    Ok(())
}
