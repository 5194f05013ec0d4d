//! The right to erasure: a person's data goes, only an anonymous trace and a hash stay.

use diesel::prelude::*;

use super::find_subscriber;
use crate::db::events::{EventContext, NewEvent};
use crate::db::schema::{deliveries, subscriber_events, subscribers, suppressions};
use crate::db::{DbConnection, now, write_tx};
use crate::domain::EventKind;

/// Erases a person: their row, tokens, deliveries and consent entries go; an anonymous
/// `erased` entry and the hash of the address stay, so an import cannot add them again.
pub fn erase_subscriber(
    conn: &mut DbConnection,
    id: i64,
    context: &EventContext,
) -> anyhow::Result<Option<String>> {
    write_tx(conn, |conn| {
        let Some(subscriber) = find_subscriber(conn, id)? else {
            return Ok(None);
        };
        diesel::delete(subscriber_events::table.filter(subscriber_events::subscriber_id.eq(id)))
            .execute(conn)?;
        // The queue has no foreign key to cascade with (see the migration).
        diesel::delete(deliveries::table.filter(deliveries::subscriber_id.eq(id))).execute(conn)?;
        diesel::delete(subscribers::table.find(id)).execute(conn)?;
        diesel::insert_into(subscriber_events::table)
            .values(NewEvent {
                subscriber_id: None,
                kind: EventKind::Erased.as_str(),
                ip: None,
                user_agent: None,
                source: &context.source,
                created_at: now(),
            })
            .execute(conn)?;
        let hash = crate::domain::hash_email(&subscriber.email);
        // Already suppressed (erased before, or by a concurrent erasure): nothing to add.
        let suppression = (
            suppressions::email_hash.eq(&hash),
            suppressions::created_at.eq(now()),
        );
        crate::on_backend!(conn, |c| diesel::insert_into(suppressions::table)
            .values(suppression)
            .on_conflict(suppressions::email_hash)
            .do_nothing()
            .execute(c))?;
        Ok(Some(subscriber.email))
    })
}
