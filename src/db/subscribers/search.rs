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
/// `term` (compared byte by byte, as SQLite does).
const AFTER_ALL: char = '\u{10FFFF}';

/// One page of people matching `term` (empty: everyone) and `status`, newest first; the flag
/// says whether there is a next page.
pub fn search_subscribers(
    conn: &mut DbConnection,
    term: &str,
    status: Option<SubscriberStatus>,
    page: i64,
    per_page: i64,
) -> QueryResult<(Vec<Subscriber>, bool)> {
    let term = term.trim().to_lowercase();
    let mut query = subscribers::table.into_boxed();
    if let Some(status) = status {
        query = query.filter(subscribers::status.eq(status.as_str()));
    }
    if !term.is_empty() {
        let lower_name = diesel::dsl::sql::<diesel::sql_types::Text>("lower(name)");
        query = match conn {
            DbConnection::Postgres(_) => {
                let pattern = format!("{}%", escape_like(&term));
                let name_like = diesel::dsl::sql::<diesel::sql_types::Bool>("lower(name) LIKE ")
                    .bind::<diesel::sql_types::Text, _>(pattern.clone())
                    .sql(" ESCAPE '\\'");
                query.filter(
                    subscribers::email_key
                        .like(pattern)
                        .escape('\\')
                        .or(name_like),
                )
            }
            DbConnection::Sqlite(_) => {
                let end = format!("{term}{AFTER_ALL}");
                query.filter(
                    subscribers::email_key
                        .ge(term.clone())
                        .and(subscribers::email_key.lt(end.clone()))
                        .or(lower_name.clone().ge(term).and(lower_name.lt(end))),
                )
            }
        };
    }
    let mut rows: Vec<Subscriber> = query
        .order(subscribers::id.desc())
        .limit(per_page + 1)
        .offset((page - 1).max(0).saturating_mul(per_page))
        .select(Subscriber::as_select())
        .load(conn)?;
    let more = rows.len() as i64 > per_page;
    rows.truncate(per_page as usize);
    Ok((rows, more))
}

fn escape_like(term: &str) -> String {
    let mut out = String::with_capacity(term.len());
    for c in term.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
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
