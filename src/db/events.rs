//! The consent ledger: every subscribe, confirm, unsubscribe, bounce, merge and erasure, with
//! when, from which address and user agent, through which channel, and the evidence. It is the
//! proof of double opt-in that privacy law asks for.

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
    /// The channel: form, api, cli, staff-api, import, smtp, ...
    pub source: String,
    /// The evidence in words: the consent an import names, a server's refusal, who acted.
    pub detail: Option<String>,
}

impl EventContext {
    /// A context with only a source (and no client), as the CLI and the worker have.
    pub fn from_source(source: &str) -> EventContext {
        EventContext {
            source: source.to_string(),
            ..EventContext::default()
        }
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> EventContext {
        self.detail = Some(detail.into());
        self
    }
}

#[derive(Insertable)]
#[diesel(table_name = subscriber_events, treat_none_as_default_value = false)]
struct NewEvent<'a> {
    subscriber_id: Option<i64>,
    kind: &'a str,
    ip: Option<&'a str>,
    user_agent: Option<&'a str>,
    source: &'a str,
    detail: Option<&'a str>,
    created_at: NaiveDateTime,
}

pub fn insert_event(
    conn: &mut DbConnection,
    subscriber_id: i64,
    kind: EventKind,
    context: &EventContext,
) -> QueryResult<()> {
    insert_events(conn, kind, &[(subscriber_id, context)])
}

/// An entry that names no one, with only its source: what stays of a person who was erased.
pub fn insert_anonymous_event(
    conn: &mut DbConnection,
    kind: EventKind,
    source: &str,
) -> QueryResult<()> {
    let context = EventContext::from_source(source);
    diesel::insert_into(subscriber_events::table)
        .values(new_event(None, kind, &context, now()))
        .execute(conn)
        .map(|_| ())
}

/// One event of `kind` per (subscriber, context), in one statement.
pub fn insert_events(
    conn: &mut DbConnection,
    kind: EventKind,
    events: &[(i64, &EventContext)],
) -> QueryResult<()> {
    let created_at = now();
    if let DbConnection::Postgres(c) = conn {
        return crate::db::prepared::InsertEvents {
            subscriber_ids: events.iter().map(|(id, _)| *id).collect(),
            kind: kind.as_str(),
            ips: events.iter().map(|(_, c)| c.ip.as_deref()).collect(),
            user_agents: events
                .iter()
                .map(|(_, c)| c.user_agent.as_deref())
                .collect(),
            sources: events.iter().map(|(_, c)| c.source.as_str()).collect(),
            details: events.iter().map(|(_, c)| c.detail.as_deref()).collect(),
            now: created_at,
        }
        .execute(c)
        .map(|_| ());
    }
    let rows: Vec<NewEvent<'_>> = events
        .iter()
        .map(|(subscriber_id, context)| new_event(Some(*subscriber_id), kind, context, created_at))
        .collect();
    crate::on_backend!(conn, |c| diesel::insert_into(subscriber_events::table)
        .values(&rows)
        .execute(c))
    .map(|_| ())
}

fn new_event<'a>(
    subscriber_id: Option<i64>,
    kind: EventKind,
    context: &'a EventContext,
    created_at: NaiveDateTime,
) -> NewEvent<'a> {
    NewEvent {
        subscriber_id,
        kind: kind.as_str(),
        ip: context.ip.as_deref(),
        user_agent: context.user_agent.as_deref(),
        source: &context.source,
        detail: context.detail.as_deref(),
        created_at,
    }
}
