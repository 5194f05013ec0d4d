//! The right to erasure: a person's data goes, only an anonymous trace and a hash stay.

use std::collections::BTreeSet;

use diesel::prelude::*;

use super::find_subscriber;
use crate::db::events::{EventContext, insert_anonymous_event};
use crate::db::queue::finish_digests_when_done;
use crate::db::schema::{
    deliveries, retired_unsubscribe_tokens, subscriber_events, subscribers, suppressions,
};
use crate::db::{DbConnection, now, write_tx};
use crate::domain::{DeliveryStatus, EventKind};

/// Erases a person: their row, tokens, deliveries and consent entries go; an anonymous
/// `erased` entry and the hash of the address stay, so an import cannot add them again. A
/// digest that was waiting only for their mail is finished, not left `sending`.
pub fn erase_subscriber(
    conn: &mut DbConnection,
    id: i64,
    context: &EventContext,
) -> anyhow::Result<Option<String>> {
    write_tx(conn, |conn| {
        let Some(subscriber) = find_subscriber(conn, id)? else {
            return Ok(None);
        };
        let now = now();
        diesel::delete(subscriber_events::table.filter(subscriber_events::subscriber_id.eq(id)))
            .execute(conn)?;
        // The queue has no foreign key to cascade with (see the first migration).
        let theirs = deliveries::table.filter(deliveries::subscriber_id.eq(id));
        let open_digests: BTreeSet<i64> = theirs
            .filter(deliveries::status.eq_any([
                DeliveryStatus::Queued.as_str(),
                DeliveryStatus::Sending.as_str(),
            ]))
            .select(deliveries::digest_id)
            .load::<Option<i64>>(conn)?
            .into_iter()
            .flatten()
            .collect();
        diesel::delete(
            retired_unsubscribe_tokens::table.filter(
                retired_unsubscribe_tokens::delivery_id.eq_any(theirs.select(deliveries::id)),
            ),
        )
        .execute(conn)?;
        diesel::delete(theirs).execute(conn)?;
        diesel::delete(subscribers::table.find(id)).execute(conn)?;
        insert_anonymous_event(conn, EventKind::Erased, &context.source)?;
        finish_digests_when_done(conn, &open_digests, now)?;
        let hash = crate::domain::hash_email(&subscriber.email);
        // Already suppressed (erased before, or by a concurrent erasure): nothing to add.
        let suppression = (
            suppressions::email_hash.eq(&hash),
            suppressions::created_at.eq(now),
        );
        crate::on_backend!(conn, |c| diesel::insert_into(suppressions::table)
            .values(suppression)
            .on_conflict(suppressions::email_hash)
            .do_nothing()
            .execute(c))?;
        Ok(Some(subscriber.email))
    })
}
