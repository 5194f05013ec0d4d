//! Subscribers: the list itself. Each operation on it has a file of its own: `signup`,
//! `confirm`, `unsubscribe`, `import` and `erase`; this one holds the row and the lookups.

mod confirm;
mod erase;
mod import;
mod search;
mod signup;
mod unsubscribe;

pub use confirm::{
    ConfirmOutcome, LinkCheck, check_confirmation_link, confirm_subscriber,
    find_subscriber_by_confirmation_token,
};
pub use erase::erase_subscriber;
pub use import::{
    ImportReport, ImportedPerson, WithoutStatus, import_in_batches, import_subscribers,
};
pub use search::{LedgerEntry, MailEntry, ledger_of, mails_of, search_subscribers, why_they_left};
pub use signup::{Signup, SignupOutcome, record_signups};
pub use unsubscribe::{
    end_subscription, find_subscriber_by_unsubscribe_token, mark_bounced, unsubscribe_by_staff,
    unsubscribe_subscriber,
};

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::DbConnection;
use super::schema::subscribers;
use crate::domain::{SubscriberStatus, email_key};

#[derive(Debug, Clone, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = subscribers)]
pub struct Subscriber {
    pub id: i64,
    pub email: String,
    pub name: Option<String>,
    pub status: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub confirmed_at: Option<NaiveDateTime>,
    pub unsubscribed_at: Option<NaiveDateTime>,
}

#[derive(Insertable)]
#[diesel(table_name = subscribers, treat_none_as_default_value = false)]
pub(super) struct NewSubscriber<'a> {
    pub(super) email: &'a str,
    pub(super) email_key: String,
    pub(super) name: Option<&'a str>,
    pub(super) status: &'a str,
    pub(super) created_at: NaiveDateTime,
    pub(super) updated_at: NaiveDateTime,
    pub(super) confirmed_at: Option<NaiveDateTime>,
    pub(super) unsubscribed_at: Option<NaiveDateTime>,
}

/// Inserts a subscriber and returns the new id.
pub(super) fn insert_subscriber(
    conn: &mut DbConnection,
    values: &NewSubscriber<'_>,
) -> QueryResult<i64> {
    crate::on_backend!(conn, |c| diesel::insert_into(subscribers::table)
        .values(values)
        .returning(subscribers::id)
        .get_result(c))
}

/// The subscriber with this address, however its letters are cased.
pub fn find_subscriber_by_email(
    conn: &mut DbConnection,
    email: &str,
) -> QueryResult<Option<Subscriber>> {
    subscribers::table
        .filter(subscribers::email_key.eq(email_key(email)))
        .select(Subscriber::as_select())
        .first(conn)
        .optional()
}

pub fn find_subscriber(conn: &mut DbConnection, id: i64) -> QueryResult<Option<Subscriber>> {
    subscribers::table
        .find(id)
        .select(Subscriber::as_select())
        .first(conn)
        .optional()
}

/// Which subscribers a listing shows.
#[derive(Debug, Clone, Default)]
pub struct SubscriberFilter {
    pub status: Option<SubscriberStatus>,
    /// One address (any letter case).
    pub email: Option<String>,
}

/// One page of subscribers (newest first) and how many there are in all.
pub fn list_subscribers(
    conn: &mut DbConnection,
    filter: &SubscriberFilter,
    page: i64,
    per_page: i64,
) -> QueryResult<(Vec<Subscriber>, i64)> {
    let mut query = subscribers::table.into_boxed();
    let mut count = subscribers::table.into_boxed();
    if let Some(status) = filter.status {
        query = query.filter(subscribers::status.eq(status.as_str()));
        count = count.filter(subscribers::status.eq(status.as_str()));
    }
    if let Some(email) = &filter.email {
        query = query.filter(subscribers::email_key.eq(email_key(email)));
        count = count.filter(subscribers::email_key.eq(email_key(email)));
    }
    let total = count.count().get_result(conn)?;
    let rows = query
        .order(subscribers::id.desc())
        .limit(per_page)
        .offset((page - 1).max(0).saturating_mul(per_page))
        .select(Subscriber::as_select())
        .load(conn)?;
    Ok((rows, total))
}

/// Subscribers with an id above `after`, in id order: for streaming exports.
pub fn subscribers_after(
    conn: &mut DbConnection,
    status: Option<SubscriberStatus>,
    after: i64,
    limit: i64,
) -> QueryResult<Vec<Subscriber>> {
    let mut query = subscribers::table
        .filter(subscribers::id.gt(after))
        .into_boxed();
    if let Some(status) = status {
        query = query.filter(subscribers::status.eq(status.as_str()));
    }
    query
        .order(subscribers::id)
        .limit(limit)
        .select(Subscriber::as_select())
        .load(conn)
}
