//! Unsubscribing: with the link (or the RFC 8058 one-click POST) a mail carried, or by staff.
//! Idempotent and race-free: only the request that changes the status writes the ledger entry,
//! and the person's queued mail is skipped at once.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::{Subscriber, find_subscriber};
use crate::db::events::{EventContext, insert_event};
use crate::db::queue::skip_queued_mail_of;
use crate::db::schema::{deliveries, retired_unsubscribe_tokens, subscribers};
use crate::db::{DbConnection, now, write_tx};
use crate::domain::{EventKind, SubscriberStatus};

/// The subscriber whose mail carried this unsubscribe token: the token of a delivery's latest
/// copy, or of an earlier copy of it (see `retired_unsubscribe_tokens`).
pub fn find_subscriber_by_unsubscribe_token(
    conn: &mut DbConnection,
    token_hash: &str,
) -> QueryResult<Option<Subscriber>> {
    let latest = deliveries::table
        .inner_join(subscribers::table)
        .filter(deliveries::unsubscribe_token_hash.eq(token_hash))
        .select(Subscriber::as_select())
        .first(conn)
        .optional()?;
    if latest.is_some() {
        return Ok(latest);
    }
    let delivery: Option<i64> = retired_unsubscribe_tokens::table
        .find(token_hash)
        .select(retired_unsubscribe_tokens::delivery_id)
        .first(conn)
        .optional()?;
    let Some(delivery) = delivery else {
        return Ok(None);
    };
    deliveries::table
        .inner_join(subscribers::table)
        .filter(deliveries::id.eq(delivery))
        .select(Subscriber::as_select())
        .first(conn)
        .optional()
}

/// Unsubscribes the owner of an unsubscribe token; `None` for an unknown token.
pub fn unsubscribe_subscriber(
    conn: &mut DbConnection,
    token_hash: &str,
    context: &EventContext,
) -> anyhow::Result<Option<Subscriber>> {
    write_tx(conn, |conn| {
        let Some(subscriber) = find_subscriber_by_unsubscribe_token(conn, token_hash)? else {
            return Ok(None);
        };
        end_subscription(conn, subscriber.id, EventKind::Unsubscribed, context)?;
        Ok(Some(subscriber))
    })
}

/// Staff unsubscribe a person (who asked by phone, say); `None` when there is no such id.
pub fn unsubscribe_by_staff(
    conn: &mut DbConnection,
    subscriber_id: i64,
    context: &EventContext,
) -> anyhow::Result<Option<Subscriber>> {
    write_tx(conn, |conn| {
        let Some(subscriber) = find_subscriber(conn, subscriber_id)? else {
            return Ok(None);
        };
        end_subscription(conn, subscriber.id, EventKind::Unsubscribed, context)?;
        Ok(find_subscriber(conn, subscriber_id)?)
    })
}

/// Unsubscribes a person, once, with a ledger entry of `kind` (`unsubscribed`, or
/// `complained` for a spam complaint), and skips the mail queued for them. False when they were
/// unsubscribed already.
pub fn end_subscription(
    conn: &mut DbConnection,
    subscriber_id: i64,
    kind: EventKind,
    context: &EventContext,
) -> anyhow::Result<bool> {
    let now = now();
    let changed = diesel::update(
        subscribers::table
            .find(subscriber_id)
            .filter(subscribers::status.ne(SubscriberStatus::Unsubscribed.as_str())),
    )
    .set((
        subscribers::status.eq(SubscriberStatus::Unsubscribed.as_str()),
        subscribers::unsubscribed_at.eq(now),
        subscribers::updated_at.eq(now),
    ))
    .execute(conn)?;
    if changed == 1 {
        insert_event(conn, subscriber_id, kind, context)?;
        skip_queued_mail_of(conn, subscriber_id, now)?;
    }
    Ok(changed == 1)
}

/// Marks a person bounced (their mailbox does not exist), once, with the evidence in the
/// ledger; the worker sends them nothing more. False when they were bounced already.
pub fn mark_bounced(
    conn: &mut DbConnection,
    subscriber_id: i64,
    context: &EventContext,
    now: NaiveDateTime,
) -> QueryResult<bool> {
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
        insert_event(conn, subscriber_id, EventKind::Bounced, context)?;
    }
    Ok(changed > 0)
}
