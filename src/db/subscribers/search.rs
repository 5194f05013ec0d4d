//! The staff pages' subscriber search: addresses or names that start with what was typed, in
//! any letter case, on an index (no scan of the list), and a person's history.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;

use super::Subscriber;
use crate::db::DbConnection;
use crate::db::schema::{deliveries, digests, subscriber_events, subscribers};
use crate::domain::SubscriberStatus;

/// Above every character: `term` ≤ s < `term` + this holds exactly the strings starting with
/// `term`, compared byte by byte (SQLite's default; `COLLATE "C"` on PostgreSQL).
const AFTER_ALL: char = '\u{10FFFF}';

/// One page of people matching `term` (empty: everyone, newest first) and `status`; the flag
/// says whether there is a next page.
///
/// A search lists the people whose address starts with the term, by address, then those whose
/// name does (and address does not), by name. Each part walks its own index in order and stops
/// after the page, whatever the term: one query ordered by id let PostgreSQL pick a backward
/// scan of the whole table for a common-looking term (300 ms at a million rows).
pub fn search_subscribers(
    conn: &mut DbConnection,
    term: &str,
    status: Option<SubscriberStatus>,
    page: i64,
    per_page: i64,
) -> QueryResult<(Vec<Subscriber>, bool)> {
    let term = term.trim().to_lowercase();
    let offset = (page - 1).max(0).saturating_mul(per_page);
    let wanted = offset + per_page + 1;
    let mut rows: Vec<Subscriber> = if term.is_empty() {
        let mut query = subscribers::table.into_boxed();
        if let Some(status) = status {
            query = query.filter(subscribers::status.eq(status.as_str()));
        }
        query
            .order(subscribers::id.desc())
            .limit(per_page + 1)
            .offset(offset)
            .select(Subscriber::as_select())
            .load(conn)?
    } else {
        let mut found = by_address(conn, &term, status, wanted)?;
        if (found.len() as i64) < wanted {
            let rest = wanted - found.len() as i64;
            found.extend(by_name(conn, &term, status, rest)?);
        }
        found.into_iter().skip(offset as usize).collect()
    };
    let more = rows.len() as i64 > per_page;
    rows.truncate(per_page as usize);
    Ok((rows, more))
}

/// The columns a search compares, in byte order: `COLLATE "C"` on PostgreSQL (its indexes are
/// built so), SQLite's default.
fn keys(conn: &DbConnection) -> (&'static str, &'static str) {
    match conn {
        DbConnection::Postgres(_) => ("email_key COLLATE \"C\"", "lower(name) COLLATE \"C\""),
        DbConnection::Sqlite(_) => ("email_key", "lower(name)"),
    }
}

type Backend = <DbConnection as diesel::Connection>::Backend;
type Boxed<'a> = subscribers::BoxedQuery<'a, Backend>;

/// `column` starts with `term` (or, with `negate`, does not): `term` ≤ column < `term` +
/// [`AFTER_ALL`], in byte order.
fn starts_with<'a>(query: Boxed<'a>, column: &str, term: &str, negate: bool) -> Boxed<'a> {
    use diesel::sql_types::{Bool, Text};
    let not = if negate { "NOT " } else { "" };
    query.filter(
        diesel::dsl::sql::<Bool>(&format!("{not}({column} >= "))
            .bind::<Text, _>(term.to_string())
            .sql(&format!(" AND {column} < "))
            .bind::<Text, _>(format!("{term}{AFTER_ALL}"))
            .sql(")"),
    )
}

/// People whose address starts with `term`, by address.
fn by_address(
    conn: &mut DbConnection,
    term: &str,
    status: Option<SubscriberStatus>,
    limit: i64,
) -> QueryResult<Vec<Subscriber>> {
    let (address, _) = keys(conn);
    let mut query = starts_with(subscribers::table.into_boxed(), address, term, false);
    if let Some(status) = status {
        query = query.filter(subscribers::status.eq(status.as_str()));
    }
    query
        .order(diesel::dsl::sql::<diesel::sql_types::Text>(address))
        .limit(limit)
        .select(Subscriber::as_select())
        .load(conn)
}

/// People whose name (and not address) starts with `term`, by name.
fn by_name(
    conn: &mut DbConnection,
    term: &str,
    status: Option<SubscriberStatus>,
    limit: i64,
) -> QueryResult<Vec<Subscriber>> {
    let (address, name) = keys(conn);
    let mut query = starts_with(subscribers::table.into_boxed(), name, term, false);
    query = starts_with(query, address, term, true);
    if let Some(status) = status {
        query = query.filter(subscribers::status.eq(status.as_str()));
    }
    query
        .order((
            diesel::dsl::sql::<diesel::sql_types::Text>(name),
            subscribers::id,
        ))
        .limit(limit)
        .select(Subscriber::as_select())
        .load(conn)
}

/// One entry of a person's consent ledger.
#[derive(Debug, Clone, Queryable, Serialize)]
pub struct LedgerEntry {
    pub kind: String,
    pub created_at: NaiveDateTime,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub source: String,
    pub detail: Option<String>,
}

pub fn ledger_of(conn: &mut DbConnection, subscriber_id: i64) -> QueryResult<Vec<LedgerEntry>> {
    subscriber_events::table
        .filter(subscriber_events::subscriber_id.eq(subscriber_id))
        .order(subscriber_events::id)
        .select((
            subscriber_events::kind,
            subscriber_events::created_at,
            subscriber_events::ip,
            subscriber_events::user_agent,
            subscriber_events::source,
            subscriber_events::detail,
        ))
        .load(conn)
}

/// Why a person left: their latest `bounced`, `complained` or `unsubscribed` entry.
#[derive(Debug, Clone, Queryable)]
pub struct Departure {
    pub subscriber_id: Option<i64>,
    pub kind: String,
    pub at: NaiveDateTime,
    pub source: String,
    /// The evidence: the bounce's status and words, who reported it.
    pub detail: Option<String>,
}

/// Why each of these people left, by subscriber id.
pub fn why_they_left(
    conn: &mut DbConnection,
    subscriber_ids: &[i64],
) -> QueryResult<std::collections::HashMap<i64, Departure>> {
    let entries: Vec<Departure> = subscriber_events::table
        .filter(subscriber_events::subscriber_id.eq_any(subscriber_ids))
        .filter(subscriber_events::kind.eq_any(["bounced", "complained", "unsubscribed"]))
        .order(subscriber_events::id)
        .select((
            subscriber_events::subscriber_id,
            subscriber_events::kind,
            subscriber_events::created_at,
            subscriber_events::source,
            subscriber_events::detail,
        ))
        .load(conn)?;
    Ok(entries
        .into_iter()
        .filter_map(|d| Some((d.subscriber_id?, d)))
        .collect())
}

/// One mail sent (or meant) for a person.
#[derive(Debug, Clone, Queryable, Serialize)]
pub struct MailEntry {
    pub kind: String,
    pub digest_id: Option<i64>,
    pub subject: Option<String>,
    pub status: String,
    pub created_at: NaiveDateTime,
    pub sent_at: Option<NaiveDateTime>,
    pub last_error: Option<String>,
}

/// The newest `limit` mails of a person.
pub fn mails_of(
    conn: &mut DbConnection,
    subscriber_id: i64,
    limit: i64,
) -> QueryResult<Vec<MailEntry>> {
    deliveries::table
        .left_join(digests::table)
        .filter(deliveries::subscriber_id.eq(subscriber_id))
        .order(deliveries::id.desc())
        .limit(limit)
        .select((
            deliveries::kind,
            deliveries::digest_id,
            digests::subject.nullable(),
            deliveries::status,
            deliveries::created_at,
            deliveries::sent_at,
            deliveries::last_error,
        ))
        .load(conn)
}
