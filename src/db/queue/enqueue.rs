//! Putting mail in the queue. (A digest's mail is queued in one INSERT … SELECT by
//! [`crate::db::digests::queue_digest`].)

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::deliveries;
use crate::db::{DbConnection, now};
use crate::domain::{DeliveryKind, DeliveryStatus};

#[derive(Insertable)]
#[diesel(table_name = deliveries, treat_none_as_default_value = false)]
struct NewDelivery<'a> {
    kind: &'a str,
    priority: i32,
    subscriber_id: Option<i64>,
    status: &'a str,
    attempts: i32,
    next_attempt_at: NaiveDateTime,
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
            created_at: now,
        })
        .collect();
    crate::on_backend!(conn, |c| diesel::insert_into(deliveries::table)
        .values(&rows)
        .execute(c))
}
