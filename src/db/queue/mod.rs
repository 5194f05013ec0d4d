//! The delivery queue: one row per mail to send. Rows are queued (`enqueue`), claimed by a
//! worker under a lease (`claim`), and their outcome is written back (`record`). A lease that
//! runs out (a crashed worker) puts the row back in the queue.

mod claim;
mod enqueue;
mod record;

pub use claim::{ClaimTerms, ClaimedDelivery, claim_due_deliveries};
pub use enqueue::enqueue_for_subscribers;
pub use record::{DeliveryOutcome, record_delivery_outcomes};

use std::collections::BTreeSet;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::DbConnection;
use super::schema::{deliveries, digests};
use crate::domain::{DeliveryStatus, DigestStatus};

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
