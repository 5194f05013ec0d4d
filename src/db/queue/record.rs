//! Writing back what happened to claimed deliveries.

use std::collections::BTreeSet;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::finish_digests_when_done;
use crate::db::events::{EventContext, insert_event};
use crate::db::schema::{deliveries, subscribers};
use crate::db::{DbConnection, now, write_tx};
use crate::domain::{DeliveryStatus, EventKind, SubscriberStatus};

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
