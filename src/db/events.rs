//! The consent ledger: every subscribe, confirm, unsubscribe, bounce and erasure, with when,
//! from which address and user agent, and through which channel. It is the proof of double
//! opt-in that privacy law asks for.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::subscriber_events;
use super::{DbConnection, now};
use crate::domain::EventKind;

/// Where a consent event came from: kept as proof of opt-in.
#[derive(Debug, Clone, Default)]
pub struct EventContext {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub source: String,
}

#[derive(Insertable)]
#[diesel(table_name = subscriber_events, treat_none_as_default_value = false)]
pub(super) struct NewEvent<'a> {
    pub(super) subscriber_id: Option<i64>,
    pub(super) kind: &'a str,
    pub(super) ip: Option<&'a str>,
    pub(super) user_agent: Option<&'a str>,
    pub(super) source: &'a str,
    pub(super) created_at: NaiveDateTime,
}

pub fn insert_event(
    conn: &mut DbConnection,
    subscriber_id: i64,
    kind: EventKind,
    context: &EventContext,
) -> QueryResult<()> {
    insert_events(conn, kind, &[(subscriber_id, context)])
}

/// One event of `kind` per (subscriber, context), in one statement.
pub(super) fn insert_events(
    conn: &mut DbConnection,
    kind: EventKind,
    events: &[(i64, &EventContext)],
) -> QueryResult<()> {
    let created_at = now();
    let rows: Vec<NewEvent<'_>> = events
        .iter()
        .map(|(subscriber_id, context)| NewEvent {
            subscriber_id: Some(*subscriber_id),
            kind: kind.as_str(),
            ip: context.ip.as_deref(),
            user_agent: context.user_agent.as_deref(),
            source: &context.source,
            created_at,
        })
        .collect();
    crate::on_backend!(conn, |c| diesel::insert_into(subscriber_events::table)
        .values(&rows)
        .execute(c))
    .map(|_| ())
}
