//! The delivery queue: one row per mail to send. Rows are queued (`enqueue`), claimed by a
//! worker under a lease that the worker renews while it lives (`claim`, `lease`), and their
//! outcome is written back (`record`) only by the claim that still holds them, so a worker that
//! lost its lease cannot undo what another recorded. A lease that runs out (a crashed worker)
//! puts the row back in the queue.

mod claim;
mod enqueue;
mod lease;
mod record;

pub use claim::{Claim, ClaimRequest, ClaimedRow, RowSecrets, claim_due_deliveries};
pub use enqueue::{HandTerms, HandedConfirmation, enqueue_for_subscribers, hand_confirmations};
pub use lease::{Reclaimed, reclaim_expired_leases, renew_leases};
pub use record::{
    DigestState, Finished, Outcome, RecordOptions, RecordReport, RecordTerms,
    finish_drained_digests, record_outcomes,
};

use std::collections::BTreeSet;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::DbConnection;
use super::schema::{deliveries, digests};
use crate::domain::{DeliveryStatus, DigestStatus};

/// The status a row goes back to when it leaves a worker unsent: `queued`, unless its digest
/// was cancelled meanwhile, when it is `skipped` (cancel turns everything not yet sent into
/// `skipped`, including what workers held at that moment).
pub(crate) const BACK_TO_QUEUE: &str = "CASE WHEN EXISTS (SELECT 1 FROM digests g \
     WHERE g.id = deliveries.digest_id AND g.status = 'cancelled') THEN 'skipped' ELSE 'queued' END";

/// The rows of the `deliveries_due` index: queued mail people wait for (not a digest's).
///
/// The partial indexes' predicates are written into the queries that read them as SQL, not as
/// bound values: neither planner can prove `status = $1` implies `status = 'queued'` (SQLite
/// never, PostgreSQL not in a generic plan), and would read the whole table instead.
pub(crate) const DUE_MAIL: &str = "deliveries.status = 'queued' AND deliveries.priority = 0";

/// The rows of the `deliveries_sending` index: mail a worker holds under a lease.
pub(crate) const HELD_MAIL: &str = "deliveries.status = 'sending'";

/// Someone who left gets nothing more: their queued mail is `skipped` now (not only when a
/// worker would reach it), and a digest that was waiting only for them is finished.
pub fn skip_queued_mail_of(
    conn: &mut DbConnection,
    subscriber_id: i64,
    now: NaiveDateTime,
) -> QueryResult<()> {
    let queued = deliveries::table
        .filter(deliveries::subscriber_id.eq(subscriber_id))
        .filter(deliveries::status.eq(DeliveryStatus::Queued.as_str()));
    let digests: BTreeSet<i64> = queued
        .select(deliveries::digest_id)
        .load::<Option<i64>>(conn)?
        .into_iter()
        .flatten()
        .collect();
    diesel::update(queued)
        .set(deliveries::status.eq(DeliveryStatus::Skipped.as_str()))
        .execute(conn)?;
    finish_digests_when_done(conn, &digests, now)
}

/// A digest is `sent` once none of its deliveries is queued or being sent (a paused one too:
/// what was in flight when it paused was the last of it).
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
        if !has_open_deliveries(conn, *digest_id)? {
            mark_digest_sent(conn, *digest_id, now)?;
        }
    }
    Ok(())
}

/// Whether a digest still has a delivery queued or being sent. One open row is enough to know:
/// counting them all cost O(open rows) per batch.
pub(crate) fn has_open_deliveries(conn: &mut DbConnection, digest_id: i64) -> QueryResult<bool> {
    let open: Option<i64> = deliveries::table
        .filter(deliveries::digest_id.eq(digest_id))
        .filter(deliveries::status.eq_any([
            DeliveryStatus::Queued.as_str(),
            DeliveryStatus::Sending.as_str(),
        ]))
        .select(deliveries::id)
        .first(conn)
        .optional()?;
    Ok(open.is_some())
}

/// Marks a sending or paused digest `sent`.
pub(crate) fn mark_digest_sent(
    conn: &mut DbConnection,
    digest_id: i64,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(
        digests::table
            .find(digest_id)
            .filter(digests::status.eq_any([
                DigestStatus::Sending.as_str(),
                DigestStatus::Paused.as_str(),
            ])),
    )
    .set((
        digests::status.eq(DigestStatus::Sent.as_str()),
        digests::finished_at.eq(now),
    ))
    .execute(conn)
}
