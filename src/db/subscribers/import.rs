//! Importing people who consented elsewhere.

use diesel::prelude::*;

use super::{NewSubscriber, find_subscriber_by_email, insert_subscriber};
use crate::db::events::{EventContext, insert_event};
use crate::db::schema::suppressions;
use crate::db::{DbConnection, now, write_tx};
use crate::domain::{EventKind, SubscriberEmail, SubscriberName, SubscriberStatus};

/// What an import did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImportReport {
    pub imported: usize,
    /// Already on the list (any status): left as they are.
    pub existing: usize,
    /// Erased earlier at their request: never re-added.
    pub suppressed: usize,
}

/// Adds people who consented elsewhere as confirmed subscribers, with an `import` event.
pub fn import_subscribers(
    conn: &mut DbConnection,
    people: &[(SubscriberEmail, Option<SubscriberName>)],
    context: &EventContext,
) -> anyhow::Result<ImportReport> {
    write_tx(conn, |conn| {
        let mut report = ImportReport::default();
        for (email, name) in people {
            let hash = crate::domain::hash_email(email.as_str());
            if suppressions::table
                .find(&hash)
                .count()
                .get_result::<i64>(conn)?
                > 0
            {
                report.suppressed += 1;
                continue;
            }
            if find_subscriber_by_email(conn, email.as_str())?.is_some() {
                report.existing += 1;
                continue;
            }
            let now = now();
            let id = insert_subscriber(
                conn,
                &NewSubscriber {
                    email: email.as_str(),
                    name: name.as_ref().map(SubscriberName::as_str),
                    status: SubscriberStatus::Confirmed.as_str(),
                    created_at: now,
                    updated_at: now,
                    confirmed_at: Some(now),
                },
            )?;
            insert_event(conn, id, EventKind::Subscribed, context)?;
            insert_event(conn, id, EventKind::Confirmed, context)?;
            report.imported += 1;
        }
        Ok(report)
    })
}
