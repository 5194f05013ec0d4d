//! Leases: a live worker renews the leases of the rows it holds, so a lease can be short (30 s
//! by default) and a crashed worker's rows come back within it, not after a long timeout.

use std::collections::BTreeSet;

use chrono::NaiveDateTime;
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Text};

use super::{BACK_TO_QUEUE, HELD_MAIL, finish_digests_when_done};
use crate::db::schema::deliveries;
use crate::db::{DbConnection, now, write_tx};
use crate::domain::{DeliveryStatus, FailureKind};

/// Extends the leases of every row still held by one of `claim_ids` until `until`.
pub fn renew_leases(
    conn: &mut DbConnection,
    claim_ids: &[i64],
    until: NaiveDateTime,
) -> anyhow::Result<usize> {
    if claim_ids.is_empty() {
        return Ok(0);
    }
    write_tx(conn, |conn| {
        Ok(diesel::update(
            deliveries::table
                .filter(sql::<Bool>(HELD_MAIL))
                .filter(deliveries::claim_id.eq_any(claim_ids)),
        )
        .set(deliveries::lease_expires_at.eq(until))
        .execute(conn)?)
    })
}

/// What [`reclaim_expired_leases`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reclaimed {
    /// Back in the queue (or skipped, when their digest was cancelled).
    pub requeued: usize,
    /// Out of attempts: a mail that keeps killing its worker is not tried forever.
    pub failed: usize,
}

/// Rows whose lease ran out (their worker died) go back to the queue, or fail when their
/// attempts are used up; the attempt that died counts.
pub fn reclaim_expired_leases(
    conn: &mut DbConnection,
    max_attempts: i32,
) -> anyhow::Result<Reclaimed> {
    write_tx(conn, |conn| {
        let now = now();
        let expired = deliveries::table
            .filter(sql::<Bool>(HELD_MAIL))
            .filter(deliveries::lease_expires_at.lt(now))
            .select((deliveries::id, deliveries::attempts, deliveries::digest_id));
        let expired: Vec<(i64, i32, Option<i64>)> = match conn {
            DbConnection::Postgres(c) => expired.for_update().skip_locked().load(c)?,
            DbConnection::Sqlite(c) => expired.load(c)?,
        };
        if expired.is_empty() {
            return Ok(Reclaimed::default());
        }
        let (spent, again): (Vec<_>, Vec<_>) = expired
            .iter()
            .partition(|(_, attempts, _)| *attempts >= max_attempts);
        let spent: Vec<i64> = spent.iter().map(|(id, _, _)| *id).collect();
        let again: Vec<i64> = again.iter().map(|(id, _, _)| *id).collect();
        for chunk in spent.chunks(500) {
            diesel::update(deliveries::table.filter(deliveries::id.eq_any(chunk)))
                .set((
                    deliveries::status.eq(DeliveryStatus::Failed.as_str()),
                    deliveries::failure.eq(FailureKind::Local.as_str()),
                    deliveries::last_error.eq(format!(
                        "gave up after {max_attempts} attempts: the worker sending it stopped \
                         before it finished, each time"
                    )),
                    deliveries::lease_expires_at.eq(None::<NaiveDateTime>),
                    deliveries::claim_id.eq(None::<i64>),
                ))
                .execute(conn)?;
        }
        for chunk in again.chunks(500) {
            diesel::update(deliveries::table.filter(deliveries::id.eq_any(chunk)))
                .set((
                    deliveries::status.eq(sql::<Text>(BACK_TO_QUEUE)),
                    deliveries::next_attempt_at.eq(now),
                    deliveries::last_error
                        .eq("the worker sending it stopped before it finished; sending again"),
                    deliveries::lease_expires_at.eq(None::<NaiveDateTime>),
                    deliveries::claim_id.eq(None::<i64>),
                ))
                .execute(conn)?;
        }
        let digests: BTreeSet<i64> = expired.iter().filter_map(|(_, _, d)| *d).collect();
        finish_digests_when_done(conn, &digests, now)?;
        tracing::warn!(
            requeued = again.len(),
            failed = spent.len(),
            "took back deliveries whose lease ran out (a worker stopped mid-send)"
        );
        Ok(Reclaimed {
            requeued: again.len(),
            failed: spent.len(),
        })
    })
}
