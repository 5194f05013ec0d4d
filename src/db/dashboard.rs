//! What the staff dashboard shows, from the rows or from counts the database itself keeps (so it
//! is right after a restore or an import by another tool): subscribers by status, signups and unsubscribes per day, the
//! last digests' outcomes, and whether a worker is alive.
//!
//! At a million subscribers and five million deliveries each part stays in single-digit to
//! tens of milliseconds: statuses are summed from `subscriber_counts` (kept by triggers), days read the
//! `(kind, created_at)` index of one month, and a digest whose send is over has its totals
//! counted once into `digest_totals` (nothing changes them after that).

use std::collections::BTreeMap;

use chrono::{Duration, NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text, Timestamp};
use serde::Serialize;

use super::digests::{Digest, digest_progress};
use super::queue::has_open_deliveries;
use super::schema::{deliveries, digest_totals, digests, subscriber_counts, subscribers, workers};
use super::{DbConnection, now};
use crate::domain::{DeliveryStatus, DigestStatus};

/// Subscribers by status (every status present, zero when none), from the counts the database
/// keeps in `subscriber_counts` by trigger (see the migration).
pub fn status_counts(conn: &mut DbConnection) -> QueryResult<BTreeMap<String, i64>> {
    let shards: Vec<(String, i64)> = subscriber_counts::table
        .select((subscriber_counts::status, subscriber_counts::n))
        .load(conn)?;
    let mut counts: BTreeMap<String, i64> = ["pending", "confirmed", "unsubscribed", "bounced"]
        .into_iter()
        .map(|s| (s.to_string(), 0))
        .collect();
    for (status, n) in shards {
        *counts.entry(status).or_default() += n;
    }
    Ok(counts)
}

/// One day of the chart.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Day {
    pub date: NaiveDate,
    pub signups: i64,
    pub unsubscribes: i64,
}

#[derive(QueryableByName)]
struct DayCount {
    #[diesel(sql_type = Text)]
    day: String,
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Signups (`subscribed` in the ledger) and unsubscribes per day for the last `days` days, oldest
/// first, today included.
pub fn daily_counts(conn: &mut DbConnection, days: i64) -> QueryResult<Vec<Day>> {
    let today = now().date();
    let first = today - Duration::days(days - 1);
    let since: NaiveDateTime = first.and_hms_opt(0, 0, 0).unwrap_or_default();
    let rows: Vec<DayCount> = match conn {
        DbConnection::Sqlite(c) => diesel::sql_query(
            "SELECT substr(created_at, 1, 10) AS day, kind, count(*) AS n FROM subscriber_events \
             WHERE kind IN ('subscribed', 'unsubscribed') AND created_at >= ? \
             GROUP BY 1, 2",
        )
        .bind::<Timestamp, _>(since)
        .load(c)?,
        DbConnection::Postgres(c) => diesel::sql_query(
            "SELECT to_char(created_at, 'YYYY-MM-DD') AS day, kind, count(*) AS n \
             FROM subscriber_events \
             WHERE kind IN ('subscribed', 'unsubscribed') AND created_at >= $1 \
             GROUP BY 1, 2",
        )
        .bind::<Timestamp, _>(since)
        .load(c)?,
    };
    let mut out: Vec<Day> = (0..days)
        .map(|i| Day {
            date: first + Duration::days(i),
            signups: 0,
            unsubscribes: 0,
        })
        .collect();
    for row in rows {
        let Ok(date) = NaiveDate::parse_from_str(&row.day, "%Y-%m-%d") else {
            continue;
        };
        let Some(day) = out.iter_mut().find(|d| d.date == date) else {
            continue;
        };
        match row.kind.as_str() {
            "subscribed" => day.signups += row.n,
            _ => day.unsubscribes += row.n,
        }
    }
    Ok(out)
}

/// A digest with its outcome so far.
#[derive(Debug, Clone, Serialize)]
pub struct DigestSummary {
    #[serde(flatten)]
    pub digest: Digest,
    pub queued: i64,
    pub sent: i64,
    pub failed: i64,
    pub skipped: i64,
}

/// The `limit` newest digests with their counts.
pub fn recent_digests(conn: &mut DbConnection, limit: i64) -> anyhow::Result<Vec<DigestSummary>> {
    let list: Vec<Digest> = digests::table
        .order(digests::id.desc())
        .limit(limit)
        .select(Digest::as_select())
        .load(conn)?;
    list.into_iter().map(|d| summarize(conn, d)).collect()
}

/// Counts a digest's outcome: a draft has none, a finished send's totals are counted once and
/// kept (the worker does it when it sees the send end; a page view does it when it comes
/// first), a send under way is counted now.
pub fn summarize(conn: &mut DbConnection, digest: Digest) -> anyhow::Result<DigestSummary> {
    let mut summary = DigestSummary {
        digest,
        queued: 0,
        sent: 0,
        failed: 0,
        skipped: 0,
    };
    let id = summary.digest.id;
    let status = DigestStatus::parse(&summary.digest.status);
    if status == Some(DigestStatus::Draft) {
        return Ok(summary);
    }
    let over = matches!(status, Some(DigestStatus::Sent | DigestStatus::Cancelled));
    if over {
        let kept: Option<(i64, i64, i64)> = digest_totals::table
            .find(id)
            .select((
                digest_totals::sent,
                digest_totals::failed,
                digest_totals::skipped,
            ))
            .first(conn)
            .optional()?;
        if let Some((sent, failed, skipped)) = kept {
            (summary.sent, summary.failed, summary.skipped) = (sent, failed, skipped);
            return Ok(summary);
        }
    }
    let Some(progress) = digest_progress(conn, id)? else {
        return Ok(summary);
    };
    summary.queued = progress.queued;
    summary.sent = progress.sent;
    summary.failed = progress.failed;
    summary.skipped = progress.skipped;
    if over && !has_open_deliveries(conn, id)? {
        let (sent, failed, skipped) = (progress.sent, progress.failed, progress.skipped);
        super::write_tx(conn, |conn| {
            // Another page view or the worker may have counted it at the same moment.
            let kept: i64 = digest_totals::table.find(id).count().get_result(conn)?;
            if kept == 0 {
                diesel::insert_into(digest_totals::table)
                    .values((
                        digest_totals::digest_id.eq(id),
                        digest_totals::sent.eq(sent),
                        digest_totals::failed.eq(failed),
                        digest_totals::skipped.eq(skipped),
                        digest_totals::computed_at.eq(now()),
                    ))
                    .execute(conn)?;
            }
            Ok(())
        })?;
    }
    Ok(summary)
}

/// A failed delivery: the address (gone when erased), the kind of failure and the last error.
pub type FailedDelivery = (Option<String>, Option<String>, Option<String>);

/// The failed deliveries of a digest with their last error, newest first.
pub fn failed_deliveries(
    conn: &mut DbConnection,
    digest_id: i64,
    limit: i64,
) -> QueryResult<Vec<FailedDelivery>> {
    deliveries::table
        .left_join(subscribers::table)
        .filter(deliveries::digest_id.eq(digest_id))
        .filter(deliveries::kind.eq("digest"))
        .filter(deliveries::status.eq(DeliveryStatus::Failed.as_str()))
        .order(deliveries::id.desc())
        .limit(limit)
        .select((
            subscribers::email.nullable(),
            deliveries::failure,
            deliveries::last_error,
        ))
        .load(conn)
}

/// Says this worker is alive (and forgets workers gone for a day).
pub fn record_worker_heartbeat(
    conn: &mut DbConnection,
    worker_id: &str,
    host: &str,
    started_at: NaiveDateTime,
) -> QueryResult<()> {
    let at = now();
    let updated = diesel::update(workers::table.find(worker_id))
        .set(workers::last_seen_at.eq(at))
        .execute(conn)?;
    if updated == 0 {
        diesel::delete(workers::table.filter(workers::last_seen_at.lt(at - Duration::days(1))))
            .execute(conn)?;
        diesel::insert_into(workers::table)
            .values((
                workers::id.eq(worker_id),
                workers::host.eq(host),
                workers::started_at.eq(started_at),
                workers::last_seen_at.eq(at),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// When a worker last said it was alive.
pub fn worker_last_seen(conn: &mut DbConnection) -> QueryResult<Option<NaiveDateTime>> {
    workers::table
        .select(diesel::dsl::max(workers::last_seen_at))
        .first(conn)
}

/// Counts and keeps the totals of digests whose send just ended, so that no page view pays for
/// it. A read of the deliveries, then one small write.
pub fn keep_totals(conn: &mut DbConnection, digest_ids: &[i64]) -> anyhow::Result<()> {
    for id in digest_ids {
        if let Some(digest) = super::digests::find_digest(conn, *id)? {
            summarize(conn, digest)?;
        }
    }
    Ok(())
}
