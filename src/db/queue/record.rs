//! Writing back what happened to claimed deliveries. Every write is fenced: it applies only
//! while the row is still `sending` under the claim that sent it. A worker that lost its lease
//! (a paused process, a relay slower than the lease) finds its late outcome discarded instead
//! of re-queuing a row another worker sent, or failing one that went out.
//!
//! The same transaction keeps each digest's run of sender-side failures, pauses the digest when
//! the run reaches `pause_after_failures`, and reads back the status of every digest it
//! touched, so the worker learns of a pause made elsewhere.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDateTime;
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Text, Timestamp};

use super::{BACK_TO_QUEUE, has_open_deliveries, mark_digest_sent};
use crate::db::events::EventContext;
use crate::db::schema::{deliveries, digests};
use crate::db::subscribers::mark_bounced;
use crate::db::{Commit, DbConnection, now, write_tx, write_tx_with};
use crate::domain::{DeliveryStatus, DigestStatus, FailureKind};

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
    /// Put off unsent to `at` (its domain asked us to slow down): the attempt does not count.
    Deferred {
        at: NaiveDateTime,
    },
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

/// What a recorder wants besides writing its batch.
#[derive(Debug, Clone, Default)]
pub struct RecordOptions {
    /// Read back the digests the batch touched (their status and failure run): a worker asks
    /// every so often, to hear of a pause made elsewhere, not at every batch.
    pub read_digests: bool,
    /// Digests that may be in a run of sender-side failures: a sent mail of theirs ends it.
    pub end_runs_of: Vec<i64>,
}

/// A digest as a record read it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DigestState {
    pub id: i64,
    pub status: DigestStatus,
    /// Sender-side failures in a row so far.
    pub failure_streak: i32,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct RecordReport {
    /// Outcomes discarded because the row was no longer held by their claim.
    pub stale: usize,
    /// The digests the batch touched, after it, when read back (asked for, or when the batch
    /// changed a run of failures).
    pub digests: Vec<DigestState>,
}

/// Records a batch of outcomes in one transaction, committed [`Commit::Relaxed`]: a crashed
/// worker loses nothing by it; a crash of PostgreSQL itself can lose the last fraction of a
/// second of outcomes, and those mails then go out a second time, none is lost. Waiting for the
/// disk (about 6.5 ms a commit on the project machine) would hold every sender of the window.
///
/// Sent mail, the common case, is one statement per batch on PostgreSQL and one per claim on
/// SQLite ([`record_sent`]); a run of failures, the rare case, is kept with atomic updates. Whether a digest is finished is looked at after the commit
/// ([`finish_drained_digests`]), so that concurrent recorders never wait on a digest's row.
pub fn record_outcomes(
    conn: &mut DbConnection,
    batch: &[Finished],
    terms: &RecordTerms,
    options: &RecordOptions,
) -> anyhow::Result<RecordReport> {
    if batch.is_empty() {
        return Ok(RecordReport::default());
    }
    write_tx_with(conn, Commit::Relaxed, |conn| {
        let now = now();
        let applied = apply(conn, batch, now)?;
        let mut runs: BTreeMap<i64, Vec<&Outcome>> = BTreeMap::new();
        for (finished, applied) in batch.iter().zip(&applied) {
            if let (Some(digest_id), true) = (finished.digest_id, *applied) {
                runs.entry(digest_id).or_default().push(&finished.outcome);
            }
        }
        let refused = |outcomes: &[&Outcome]| {
            outcomes.iter().any(|o| {
                matches!(
                    o,
                    Outcome::Failed {
                        failure: FailureKind::Sender,
                        ..
                    }
                )
            })
        };
        let mut runs_changed = false;
        let mut ended = Vec::new();
        for (digest_id, outcomes) in &runs {
            if refused(outcomes) {
                count_sender_failures(conn, *digest_id, outcomes, terms, now)?;
                runs_changed = true;
            } else if options.end_runs_of.contains(digest_id) && outcomes.contains(&&Outcome::Sent)
            {
                ended.push(*digest_id);
            }
        }
        if !ended.is_empty() {
            diesel::update(digests::table.filter(digests::id.eq_any(&ended)))
                .set(digests::failure_streak.eq(0))
                .execute(conn)?;
            runs_changed = true;
        }
        let digests = if options.read_digests || runs_changed {
            let touched: BTreeSet<i64> = batch.iter().filter_map(|f| f.digest_id).collect();
            let read: Vec<(i64, String, i32)> = digests::table
                .filter(digests::id.eq_any(&touched))
                .select((digests::id, digests::status, digests::failure_streak))
                .load(conn)?;
            read.into_iter()
                .filter_map(|(id, status, failure_streak)| {
                    Some(DigestState {
                        id,
                        status: DigestStatus::parse(&status)?,
                        failure_streak,
                    })
                })
                .collect()
        } else {
            Vec::new()
        };
        Ok(RecordReport {
            stale: applied.iter().filter(|a| !**a).count(),
            digests,
        })
    })
}

/// Marks `sent` those of these digests with nothing left queued or being sent; returns the
/// status of each. Run after the outcomes were committed, in transactions of its own: a
/// digest finished by two workers at once is then seen finished by whichever looks last.
pub fn finish_drained_digests(
    conn: &mut DbConnection,
    digest_ids: &[i64],
) -> anyhow::Result<Vec<(i64, DigestStatus)>> {
    let mut statuses = Vec::with_capacity(digest_ids.len());
    for digest_id in digest_ids {
        if !has_open_deliveries(conn, *digest_id)? {
            write_tx(conn, |conn| Ok(mark_digest_sent(conn, *digest_id, now())?))?;
        }
        let status: Option<String> = digests::table
            .find(digest_id)
            .select(digests::status)
            .first(conn)
            .optional()?;
        statuses.extend(
            status
                .as_deref()
                .and_then(DigestStatus::parse)
                .map(|s| (*digest_id, s)),
        );
    }
    Ok(statuses)
}

/// Marks these `(index, id, claim id)` rows sent where their fence holds; the ids it marked.
///
/// On PostgreSQL one statement for the whole batch, whatever its claims (a batch at a signup
/// flood's pace spans two or three claims, and a statement per claim was most of the
/// outcome statements); planned with its values each time, like the claim's own update. On
/// SQLite a prepared statement per claim (diesel caches it per connection): SQLite has no
/// arrays to join against, and its statements cost no round trip.
///
/// `(status = 'sending') IS TRUE` is the fence written so that PostgreSQL cannot answer it from
/// an index of `sending` rows (`deliveries_sending` now, the whole queue's `deliveries_due`
/// when this was found): it estimates few rows `sending` and reads them with a bitmap scan,
/// which walks every index entry a row left behind in `sending` since the last VACUUM (11,000
/// in a 20 s signup benchmark, 3 ms a batch). By id it is 0.5 ms.
fn record_sent(
    conn: &mut DbConnection,
    rows: &[(usize, i64, i64)],
    now: NaiveDateTime,
) -> QueryResult<BTreeSet<i64>> {
    match conn {
        DbConnection::Postgres(c) => {
            let ids: Vec<i64> = rows.iter().map(|(_, id, _)| *id).collect();
            let claims: Vec<i64> = rows.iter().map(|(_, _, claim)| *claim).collect();
            let marked: Vec<Marked> = diesel::sql_query(
                "UPDATE deliveries AS d SET status = 'sent', sent_at = $3, lease_expires_at = NULL,
                     last_error = NULL
                 FROM (SELECT unnest($1) AS id, unnest($2) AS claim_id) AS v
                 WHERE d.id = v.id AND d.claim_id = v.claim_id AND (d.status = 'sending') IS TRUE
                 RETURNING d.id",
            )
            .bind::<Array<BigInt>, _>(ids)
            .bind::<Array<BigInt>, _>(claims)
            .bind::<Timestamp, _>(now)
            .load(c)?;
            Ok(marked.into_iter().map(|m| m.id).collect())
        }
        DbConnection::Sqlite(c) => {
            let mut by_claim: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
            for (_, id, claim_id) in rows {
                by_claim.entry(*claim_id).or_default().push(*id);
            }
            let mut marked = BTreeSet::new();
            for (claim_id, ids) in by_claim {
                let target = deliveries::table
                    .filter(deliveries::claim_id.eq(claim_id))
                    .filter(deliveries::status.eq(DeliveryStatus::Sending.as_str()))
                    .filter(deliveries::id.eq_any(&ids));
                let done: Vec<i64> = diesel::update(target)
                    .set((
                        deliveries::status.eq(DeliveryStatus::Sent.as_str()),
                        deliveries::sent_at.eq(now),
                        deliveries::lease_expires_at.eq(None::<NaiveDateTime>),
                        deliveries::last_error.eq(None::<String>),
                    ))
                    .returning(deliveries::id)
                    .get_results(c)?;
                marked.extend(done);
            }
            Ok(marked)
        }
    }
}

/// A row an `UPDATE … RETURNING id` changed.
#[derive(QueryableByName)]
struct Marked {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// Puts these `(index, row, due again at)` back in the queue unsent, as `Released` does, due at
/// their own times; the ids it changed. One statement on PostgreSQL: a domain that asked us to
/// slow down can have most of a batch put off, and a statement per row was a round trip each.
fn record_deferred(
    conn: &mut diesel::PgConnection,
    rows: &[(usize, &Finished, NaiveDateTime)],
) -> QueryResult<BTreeSet<i64>> {
    let ids: Vec<i64> = rows.iter().map(|(_, f, _)| f.id).collect();
    let claims: Vec<i64> = rows.iter().map(|(_, f, _)| f.claim_id).collect();
    let ats: Vec<NaiveDateTime> = rows.iter().map(|(_, _, at)| *at).collect();
    let marked: Vec<Marked> = diesel::sql_query(format!(
        "UPDATE deliveries SET status = {BACK_TO_QUEUE}, attempts = attempts - 1,
             next_attempt_at = v.at, unsubscribe_token_hash = NULL, lease_expires_at = NULL,
             claim_id = NULL
         FROM (SELECT unnest($1) AS id, unnest($2) AS claim_id, unnest($3) AS at) AS v
         WHERE deliveries.id = v.id AND deliveries.claim_id = v.claim_id
             AND (deliveries.status = 'sending') IS TRUE
         RETURNING deliveries.id"
    ))
    .bind::<Array<BigInt>, _>(ids)
    .bind::<Array<BigInt>, _>(claims)
    .bind::<Array<Timestamp>, _>(ats)
    .load(conn)?;
    Ok(marked.into_iter().map(|m| m.id).collect())
}

/// Writes each outcome under its fence; whether it applied, in batch order.
fn apply(
    conn: &mut DbConnection,
    batch: &[Finished],
    now: NaiveDateTime,
) -> anyhow::Result<Vec<bool>> {
    let sending = DeliveryStatus::Sending.as_str();
    let mut applied = vec![false; batch.len()];
    // The common case, sent mail, in as few statements as the backend allows.
    let sent: Vec<(usize, i64, i64)> = batch
        .iter()
        .enumerate()
        .filter(|(_, finished)| finished.outcome == Outcome::Sent)
        .map(|(index, finished)| (index, finished.id, finished.claim_id))
        .collect();
    for chunk in sent.chunks(500) {
        let done = record_sent(conn, chunk, now)?;
        for (index, id, _) in chunk {
            applied[*index] = done.contains(id);
        }
    }
    let deferred: Vec<(usize, &Finished, NaiveDateTime)> = batch
        .iter()
        .enumerate()
        .filter_map(|(index, finished)| match finished.outcome {
            Outcome::Deferred { at } => Some((index, finished, at)),
            _ => None,
        })
        .collect();
    if let DbConnection::Postgres(c) = conn {
        for chunk in deferred.chunks(500) {
            let done = record_deferred(c, chunk)?;
            for (index, finished, _) in chunk {
                applied[*index] = done.contains(&finished.id);
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
                    let context = EventContext::from_source("smtp").with_detail(error.as_str());
                    mark_bounced(conn, subscriber_id, &context, now)?;
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
            // Written in one statement above on PostgreSQL.
            Outcome::Deferred { .. } if matches!(conn, DbConnection::Postgres(_)) => continue,
            Outcome::Deferred { at } => diesel::update(target)
                .set((
                    deliveries::status.eq(sql::<Text>(BACK_TO_QUEUE)),
                    deliveries::attempts.eq(deliveries::attempts - 1),
                    deliveries::next_attempt_at.eq(at),
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

/// Keeps the digest's run of sender-side failures (a sent mail ends it) and pauses the digest
/// when the run is long enough: a relay refusing us fails every reader alike, and nobody
/// should find out after the whole list was tried. The run is changed atomically (an increment,
/// or the count since the batch's last sent mail), so concurrent recorders lose nothing.
fn count_sender_failures(
    conn: &mut DbConnection,
    digest_id: i64,
    outcomes: &[&Outcome],
    terms: &RecordTerms,
    now: NaiveDateTime,
) -> QueryResult<()> {
    let last_sent = outcomes.iter().rposition(|o| **o == Outcome::Sent);
    let refusals: Vec<&str> = outcomes[last_sent.map_or(0, |i| i + 1)..]
        .iter()
        .filter_map(|o| match o {
            Outcome::Failed {
                failure: FailureKind::Sender,
                error,
            } => Some(error.as_str()),
            _ => None,
        })
        .collect();
    let after = refusals.len() as i32;
    if last_sent.is_none() && after == 0 {
        return Ok(());
    }
    let target = digests::table.find(digest_id);
    let streak: i32 = match last_sent {
        Some(_) => crate::on_backend!(&mut *conn, |c| diesel::update(target)
            .set(digests::failure_streak.eq(after))
            .returning(digests::failure_streak)
            .get_result(c))?,
        None => crate::on_backend!(&mut *conn, |c| diesel::update(target)
            .set(digests::failure_streak.eq(digests::failure_streak + after))
            .returning(digests::failure_streak)
            .get_result(c))?,
    };
    let limit = terms.pause_after_failures;
    if limit == 0 || streak < limit as i32 || after == 0 {
        return Ok(());
    }
    let reason = format!(
        "paused automatically at {}: {streak} mails in a row were refused for reasons about \
         the sender, not the recipients (the last answer: {}). Fix the mail relay or the \
         sending address, then resume: the refused mails are tried again.",
        now.format("%Y-%m-%d %H:%M UTC"),
        crate::domain::mask_addresses_in(refusals.last().copied().unwrap_or("none")),
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
