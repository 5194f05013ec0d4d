//! What a message that came back does to the list, in one transaction per recipient: the report
//! is kept as evidence (`bounce_reports`), then a hard bounce marks the person bounced, soft
//! ones are counted (`bounces.soft_limit` within `bounces.soft_window_days` make a hard one), a
//! refusal about us fails the delivery as a sender problem and leaves the person alone, a
//! complaint or an unsubscribe mail ends the subscription.

use chrono::{Duration, NaiveDateTime};
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::Bool;

use super::events::EventContext;
use super::queue::DUE_MAIL;
use super::schema::{bounce_reports, deliveries, digest_totals, digests, subscribers};
use super::subscribers::{end_subscription, mark_bounced};
use super::{DbConnection, now, write_tx};
use crate::bounces::BounceClass;
use crate::domain::{
    DeliveryKind, DeliveryStatus, DigestStatus, EventKind, FailureKind, email_key,
};

/// What came back for one recipient, and how it was tied to our mail.
#[derive(Debug, Clone)]
pub struct InboundReport {
    pub class: ReportClass,
    pub status: Option<String>,
    pub diagnostic: String,
    pub reporting_mta: Option<String>,
    pub target: Target,
}

/// The classes a report is stored under: the classifier's, and an unsubscribe mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportClass {
    Bounce(BounceClass),
    Unsubscribe,
}

impl ReportClass {
    pub fn as_str(self) -> &'static str {
        match self {
            ReportClass::Bounce(class) => class.as_str(),
            ReportClass::Unsubscribe => "unsubscribe",
        }
    }
}

/// Whose mail a report is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The delivery its VERP tag names.
    Delivery(i64),
    /// The address the message itself names.
    Address(String),
    Nobody,
}

/// The rule that turns soft bounces into a hard one.
#[derive(Debug, Clone, Copy)]
pub struct SoftRule {
    pub limit: u32,
    pub window_days: u32,
}

/// What was done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The person is now bounced (`soft_count` soft bounces made it, when it was soft).
    Bounced {
        subscriber_id: i64,
        soft_count: Option<i64>,
    },
    /// Counted; this many within the window so far.
    SoftCounted { subscriber_id: i64, count: i64 },
    /// The delivery failed as a sender problem; the person was left alone.
    SenderProblem { delivery_id: Option<i64> },
    /// The person is now unsubscribed (complained, or asked by mail).
    Unsubscribed {
        subscriber_id: i64,
        complained: bool,
    },
    /// Already so, or nothing to do (an auto-reply, a "delivered" report).
    Nothing,
    /// No subscriber or delivery of ours matches.
    Unmatched,
}

/// Stores the report and acts on it.
pub fn apply_report(
    conn: &mut DbConnection,
    report: &InboundReport,
    soft: SoftRule,
) -> anyhow::Result<Applied> {
    write_tx(conn, |conn| {
        let now = now();
        let (subscriber_id, delivery_id, matched_by) = resolve(conn, &report.target)?;
        diesel::insert_into(bounce_reports::table)
            .values((
                bounce_reports::subscriber_id.eq(subscriber_id),
                bounce_reports::delivery_id.eq(delivery_id),
                bounce_reports::class.eq(report.class.as_str()),
                bounce_reports::status.eq(&report.status),
                bounce_reports::diagnostic.eq(&report.diagnostic),
                bounce_reports::reporting_mta.eq(&report.reporting_mta),
                bounce_reports::matched_by.eq(matched_by),
                bounce_reports::created_at.eq(now),
            ))
            .execute(conn)?;
        if report.class == ReportClass::Bounce(BounceClass::Ignore) {
            return Ok(Applied::Nothing);
        }
        if report.class == ReportClass::Bounce(BounceClass::AboutUs) {
            if let Some(id) = delivery_id {
                let failed = diesel::update(
                    deliveries::table
                        .find(id)
                        .filter(deliveries::status.eq(DeliveryStatus::Sent.as_str())),
                )
                .set((
                    deliveries::status.eq(DeliveryStatus::Failed.as_str()),
                    deliveries::failure.eq(FailureKind::Sender.as_str()),
                    deliveries::last_error.eq(evidence(report)),
                ))
                .execute(conn)?;
                // A finished digest's kept totals (the staff pages' counts) move with it.
                if failed == 1 {
                    let digest: Option<i64> = deliveries::table
                        .find(id)
                        .select(deliveries::digest_id)
                        .first(conn)?;
                    if let Some(digest) = digest {
                        diesel::update(digest_totals::table.find(digest))
                            .set((
                                digest_totals::sent.eq(digest_totals::sent - 1),
                                digest_totals::failed.eq(digest_totals::failed + 1),
                            ))
                            .execute(conn)?;
                    }
                }
            }
            return Ok(Applied::SenderProblem { delivery_id });
        }
        let Some(subscriber_id) = subscriber_id else {
            return Ok(Applied::Unmatched);
        };
        let context = EventContext::from_source("bounce-mail").with_detail(evidence(report));
        Ok(match report.class {
            ReportClass::Bounce(BounceClass::Hard) => {
                match mark_bounced(conn, subscriber_id, &context, now)? {
                    true => Applied::Bounced {
                        subscriber_id,
                        soft_count: None,
                    },
                    false => Applied::Nothing,
                }
            }
            ReportClass::Bounce(BounceClass::Soft) => {
                let since = now - Duration::days(i64::from(soft.window_days));
                let count: i64 = bounce_reports::table
                    .filter(bounce_reports::subscriber_id.eq(subscriber_id))
                    .filter(bounce_reports::class.eq(BounceClass::Soft.as_str()))
                    .filter(bounce_reports::created_at.ge(since))
                    .count()
                    .get_result(conn)?;
                if count < i64::from(soft.limit.max(1)) {
                    Applied::SoftCounted {
                        subscriber_id,
                        count,
                    }
                } else {
                    let context = context.with_detail(format!(
                        "{count} soft bounces within {} days; the last: {}",
                        soft.window_days,
                        evidence(report)
                    ));
                    match mark_bounced(conn, subscriber_id, &context, now)? {
                        true => Applied::Bounced {
                            subscriber_id,
                            soft_count: Some(count),
                        },
                        false => Applied::Nothing,
                    }
                }
            }
            ReportClass::Bounce(BounceClass::Complaint) | ReportClass::Unsubscribe => {
                let complained = report.class == ReportClass::Bounce(BounceClass::Complaint);
                let (kind, context) = if complained {
                    (EventKind::Complained, context)
                } else {
                    let asked = EventContext::from_source("mailto").with_detail(evidence(report));
                    (EventKind::Unsubscribed, asked)
                };
                match end_subscription(conn, subscriber_id, kind, &context)? {
                    true => Applied::Unsubscribed {
                        subscriber_id,
                        complained,
                    },
                    false => Applied::Nothing,
                }
            }
            ReportClass::Bounce(BounceClass::AboutUs | BounceClass::Ignore) => Applied::Nothing,
        })
    })
}

/// The subscriber and delivery a report is about, and how they were found.
fn resolve(
    conn: &mut DbConnection,
    target: &Target,
) -> QueryResult<(Option<i64>, Option<i64>, &'static str)> {
    Ok(match target {
        Target::Delivery(id) => {
            let subscriber: Option<Option<i64>> = deliveries::table
                .find(*id)
                .select(deliveries::subscriber_id)
                .first(conn)
                .optional()?;
            match subscriber {
                Some(subscriber_id) => (subscriber_id, Some(*id), "tag"),
                None => (None, None, "none"),
            }
        }
        Target::Address(address) => {
            let subscriber_id: Option<i64> = subscribers::table
                .filter(subscribers::email_key.eq(email_key(address)))
                .select(subscribers::id)
                .first(conn)
                .optional()?;
            let Some(subscriber_id) = subscriber_id else {
                return Ok((None, None, "none"));
            };
            // The newest mail that went to them is the one that came back, most likely.
            let delivery_id: Option<i64> = deliveries::table
                .filter(deliveries::subscriber_id.eq(subscriber_id))
                .filter(deliveries::status.eq(DeliveryStatus::Sent.as_str()))
                .order(deliveries::id.desc())
                .select(deliveries::id)
                .first(conn)
                .optional()?;
            (Some(subscriber_id), delivery_id, "recipient")
        }
        Target::Nobody => (None, None, "none"),
    })
}

/// The evidence in one line: status, the server's words, who reported it.
fn evidence(report: &InboundReport) -> String {
    let mut text = String::new();
    if let Some(status) = &report.status {
        text.push_str(status);
        text.push(' ');
    }
    text.push_str(&report.diagnostic);
    if let Some(mta) = &report.reporting_mta {
        text.push_str(&format!(" (reported by {mta})"));
    }
    text
}

/// Bounced and complained readers of a digest, from the reports tied to its deliveries.
pub fn digest_bounce_counts(conn: &mut DbConnection, digest_id: i64) -> QueryResult<(i64, i64)> {
    let counts: Vec<(String, i64)> = bounce_reports::table
        .inner_join(deliveries::table)
        .filter(deliveries::digest_id.eq(digest_id))
        .filter(bounce_reports::class.eq_any(["hard", "complaint"]))
        .group_by(bounce_reports::class)
        .select((bounce_reports::class, diesel::dsl::count_star()))
        .load(conn)?;
    let of = |class: &str| {
        counts
            .iter()
            .find(|(c, _)| c == class)
            .map(|(_, n)| *n)
            .unwrap_or(0)
    };
    Ok((of("hard"), of("complaint")))
}

/// What `/metrics` reads for every instance: queued deliveries, how long the oldest due one has
/// waited, and the reports of mail that came back by class.
pub fn metrics_snapshot(conn: &mut DbConnection) -> QueryResult<crate::metrics::Snapshot> {
    let now = now();
    // Two parts, each read from its own index: the mail people wait for (`deliveries_due`),
    // and the digests' (by digest: only a sending or paused digest has queued mail, since
    // cancelling skips it and a digest is sent once none is left).
    let waited_for = || deliveries::table.filter(sql::<Bool>(DUE_MAIL));
    let open_digests: Vec<i64> = digests::table
        .filter(digests::status.eq_any([
            DigestStatus::Sending.as_str(),
            DigestStatus::Paused.as_str(),
        ]))
        .select(digests::id)
        .load(conn)?;
    let digests_mail = || {
        deliveries::table
            .filter(deliveries::digest_id.eq_any(&open_digests))
            .filter(deliveries::status.eq(DeliveryStatus::Queued.as_str()))
            .filter(deliveries::kind.eq(DeliveryKind::Digest.as_str()))
    };
    // Each part's count and earliest due time in one read. The earliest of all queued mail is
    // the oldest due one, or, when it is due later (put off), nothing waits: 0 seconds below.
    let depth_and_first = (
        diesel::dsl::count_star(),
        diesel::dsl::min(deliveries::next_attempt_at),
    );
    let parts: [(i64, Option<NaiveDateTime>); 2] = [
        waited_for().select(depth_and_first).first(conn)?,
        digests_mail().select(depth_and_first).first(conn)?,
    ];
    let queue_depth = parts.iter().map(|(depth, _)| depth).sum();
    let oldest = parts.iter().filter_map(|(_, first)| *first).min();
    let reports: Vec<(String, i64)> = bounce_reports::table
        .group_by(bounce_reports::class)
        .select((bounce_reports::class, diesel::dsl::count_star()))
        .load(conn)?;
    Ok(crate::metrics::Snapshot {
        queue_depth,
        oldest_due_seconds: oldest
            .map(|at| (now - at).num_seconds().max(0))
            .unwrap_or(0),
        reports,
    })
}
