//! Unsubscribing with the link (or one-click POST) that a mail carried.

use diesel::prelude::*;

use super::Subscriber;
use crate::db::events::{EventContext, insert_event};
use crate::db::schema::{deliveries, subscribers};
use crate::db::{DbConnection, now, write_tx};
use crate::domain::{EventKind, SubscriberStatus};

/// The subscriber whose mail carried this unsubscribe token.
pub fn find_subscriber_by_unsubscribe_token(
    conn: &mut DbConnection,
    token_hash: &str,
) -> QueryResult<Option<Subscriber>> {
    deliveries::table
        .inner_join(subscribers::table)
        .filter(deliveries::unsubscribe_token_hash.eq(token_hash))
        .select(Subscriber::as_select())
        .first(conn)
        .optional()
}

/// Unsubscribes the owner of an unsubscribe token; `None` for an unknown token. Idempotent.
pub fn unsubscribe_subscriber(
    conn: &mut DbConnection,
    token_hash: &str,
    context: &EventContext,
) -> anyhow::Result<Option<Subscriber>> {
    write_tx(conn, |conn| {
        let Some(subscriber) = find_subscriber_by_unsubscribe_token(conn, token_hash)? else {
            return Ok(None);
        };
        if subscriber.status == SubscriberStatus::Unsubscribed.as_str() {
            return Ok(Some(subscriber));
        }
        let now = now();
        diesel::update(subscribers::table.find(subscriber.id))
            .set((
                subscribers::status.eq(SubscriberStatus::Unsubscribed.as_str()),
                subscribers::unsubscribed_at.eq(now),
                subscribers::updated_at.eq(now),
            ))
            .execute(conn)?;
        insert_event(conn, subscriber.id, EventKind::Unsubscribed, context)?;
        Ok(Some(subscriber))
    })
}
