//! Subscribers and their consent ledger: signup, confirmation, unsubscription.

use anyhow::Context;
use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;

use super::schema::{
    confirmation_tokens, deliveries, subscriber_events, subscribers, suppressions,
};
use std::collections::{HashMap, HashSet};

use super::deliveries::enqueue_for_subscribers;
use super::{DbConnection, now, write_tx};
use crate::domain::{DeliveryKind, EventKind, SubscriberEmail, SubscriberName, SubscriberStatus};

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
struct NewSubscriber<'a> {
    email: &'a str,
    name: Option<&'a str>,
    status: &'a str,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
    confirmed_at: Option<NaiveDateTime>,
}

/// Inserts a subscriber and returns the new id.
fn insert_subscriber(conn: &mut DbConnection, values: &NewSubscriber<'_>) -> QueryResult<i64> {
    crate::on_backend!(conn, |c| diesel::insert_into(subscribers::table)
        .values(values)
        .returning(subscribers::id)
        .get_result(c))
}

/// Where a consent event came from: kept as proof of opt-in.
#[derive(Debug, Clone, Default)]
pub struct EventContext {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub source: String,
}

#[derive(Insertable)]
#[diesel(table_name = subscriber_events, treat_none_as_default_value = false)]
struct NewEvent<'a> {
    subscriber_id: Option<i64>,
    kind: &'a str,
    ip: Option<&'a str>,
    user_agent: Option<&'a str>,
    source: &'a str,
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

/// One event of `kind` per (subscriber, context), in one statement.
fn insert_events(
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

/// What a signup did. The HTTP answer is the same for all of them; only logs and tests differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignupOutcome {
    /// A new address, or one that had unsubscribed or bounced: a confirmation link is queued.
    ConfirmationQueued,
    /// Pending, and enough links were sent this hour: nothing new is queued.
    TooManyLinks,
    /// Already confirmed: nothing changes.
    AlreadyConfirmed,
}

pub fn find_subscriber_by_email(
    conn: &mut DbConnection,
    email: &str,
) -> QueryResult<Option<Subscriber>> {
    subscribers::table
        .filter(subscribers::email.eq(email))
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

/// A signup as the form or the API received it.
#[derive(Debug, Clone)]
pub struct Signup {
    pub email: SubscriberEmail,
    pub name: Option<SubscriberName>,
    pub context: EventContext,
    pub max_links_per_hour: i64,
}

/// Records signups inside the caller's write transaction (they are group-committed, see
/// [`super::group_commit`]) and returns one outcome per signup, in order. Each signup is a
/// pending subscriber, a `subscribed` event and a queued confirmation; the confirmation token
/// itself is made when the mail is rendered, so the raw token exists only in the mail.
///
/// New addresses, the common case, are written with one statement per table for the whole
/// batch; known addresses, and an address seen twice in one batch, go one by one after them.
pub fn record_signups(
    conn: &mut DbConnection,
    signups: &[Signup],
) -> anyhow::Result<Vec<SignupOutcome>> {
    let emails: Vec<&str> = signups.iter().map(|s| s.email.as_str()).collect();
    let known = known_emails(conn, &emails)?;
    let mut first_sightings = HashSet::new();
    let (fresh, others): (Vec<usize>, Vec<usize>) = (0..signups.len()).partition(|&i| {
        let email = signups[i].email.as_str();
        !known.contains(email) && first_sightings.insert(email)
    });
    let mut later = others;

    if !fresh.is_empty() {
        let new: Vec<&Signup> = fresh.iter().map(|&i| &signups[i]).collect();
        let id_of = insert_pending(conn, &new)?;
        let mut events = Vec::with_capacity(fresh.len());
        for i in fresh {
            let signup = &signups[i];
            match id_of.get(signup.email.as_str()) {
                Some(id) => events.push((*id, &signup.context)),
                // Added by another transaction since we looked: treated as a known address.
                None => later.push(i),
            }
        }
        insert_events(conn, EventKind::Subscribed, &events)?;
        let ids: Vec<i64> = events.iter().map(|(id, _)| *id).collect();
        enqueue_for_subscribers(conn, DeliveryKind::Confirmation, &ids)?;
    }
    later.sort_unstable();
    let mut outcomes = vec![SignupOutcome::ConfirmationQueued; signups.len()];
    for i in later {
        outcomes[i] = record_signup(conn, &signups[i])?;
    }
    Ok(outcomes)
}

/// Inserts pending subscribers for addresses not on the list; returns the new ids by address.
/// An address another transaction added meanwhile is left out (`ON CONFLICT DO NOTHING`, which
/// on PostgreSQL waits for that transaction), and rows go in address order, so two batches
/// with addresses in common lock them in the same order and cannot deadlock.
fn insert_pending(
    conn: &mut DbConnection,
    signups: &[&Signup],
) -> QueryResult<HashMap<String, i64>> {
    let now = now();
    let mut values: Vec<NewSubscriber<'_>> = signups
        .iter()
        .map(|s| NewSubscriber {
            email: s.email.as_str(),
            name: s.name.as_ref().map(SubscriberName::as_str),
            status: SubscriberStatus::Pending.as_str(),
            created_at: now,
            updated_at: now,
            confirmed_at: None,
        })
        .collect();
    values.sort_unstable_by(|a, b| a.email.cmp(b.email));
    let inserted: Vec<(i64, String)> =
        crate::on_backend!(conn, |c| diesel::insert_into(subscribers::table)
            .values(&values)
            .on_conflict(subscribers::email)
            .do_nothing()
            .returning((subscribers::id, subscribers::email))
            .get_results(c))?;
    Ok(inserted
        .into_iter()
        .map(|(id, email)| (email, id))
        .collect())
}

/// Which of `emails` are on the list already.
///
/// On PostgreSQL this is an unprepared statement, planned with its values each time. As a
/// prepared statement, a connection that first ran it while the table was nearly empty kept that
/// generic plan, a sequential scan, until the next ANALYZE: measured in the signup benchmark as
/// 1,938 scans reading 37 million rows in 10 s, and the p99 doubled.
fn known_emails(conn: &mut DbConnection, emails: &[&str]) -> QueryResult<HashSet<String>> {
    #[derive(QueryableByName)]
    struct Known {
        #[diesel(sql_type = diesel::sql_types::Text)]
        email: String,
    }
    let known: Vec<String> = match conn {
        DbConnection::Postgres(c) => {
            diesel::sql_query("SELECT email FROM subscribers WHERE email = ANY($1)")
                .bind::<diesel::sql_types::Array<diesel::sql_types::Text>, _>(emails)
                .load::<Known>(c)?
                .into_iter()
                .map(|k| k.email)
                .collect()
        }
        DbConnection::Sqlite(_) => subscribers::table
            .filter(subscribers::email.eq_any(emails))
            .select(subscribers::email)
            .load(conn)?,
    };
    Ok(known.into_iter().collect())
}

/// One signup of an address that may already be on the list.
fn record_signup(conn: &mut DbConnection, signup: &Signup) -> anyhow::Result<SignupOutcome> {
    let now = now();
    let name = signup.name.as_ref();
    // On PostgreSQL the row stays locked to the end of the transaction, so two instances (or
    // two committers) signing up the same address take turns and the hourly link limit holds.
    let existing = match conn {
        DbConnection::Postgres(c) => subscribers::table
            .filter(subscribers::email.eq(signup.email.as_str()))
            .select(Subscriber::as_select())
            .for_update()
            .first(c)
            .optional()?,
        DbConnection::Sqlite(_) => find_subscriber_by_email(conn, signup.email.as_str())?,
    };
    let subscriber_id = match existing {
        None => insert_pending(conn, &[signup])?
            .into_values()
            .next()
            .context("the address was added by another signup at the same moment; try again")?,
        Some(s) => match SubscriberStatus::parse(&s.status) {
            Some(SubscriberStatus::Confirmed) => return Ok(SignupOutcome::AlreadyConfirmed),
            Some(SubscriberStatus::Pending) => {
                if confirmations_in_last_hour(conn, s.id, now)? >= signup.max_links_per_hour {
                    return Ok(SignupOutcome::TooManyLinks);
                }
                update_pending(conn, s.id, name, now)?;
                s.id
            }
            // Unsubscribed or bounced people start a new double opt-in.
            _ => {
                update_pending(conn, s.id, name, now)?;
                s.id
            }
        },
    };
    insert_event(conn, subscriber_id, EventKind::Subscribed, &signup.context)?;
    enqueue_for_subscribers(conn, DeliveryKind::Confirmation, &[subscriber_id])?;
    Ok(SignupOutcome::ConfirmationQueued)
}

fn update_pending(
    conn: &mut DbConnection,
    id: i64,
    name: Option<&SubscriberName>,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    let target = subscribers::table.find(id);
    let status = subscribers::status.eq(SubscriberStatus::Pending.as_str());
    let updated = subscribers::updated_at.eq(now);
    match name {
        Some(name) => diesel::update(target)
            .set((status, updated, subscribers::name.eq(name.as_str())))
            .execute(conn),
        None => diesel::update(target).set((status, updated)).execute(conn),
    }
}

fn confirmations_in_last_hour(
    conn: &mut DbConnection,
    subscriber_id: i64,
    now: NaiveDateTime,
) -> QueryResult<i64> {
    deliveries::table
        .filter(deliveries::subscriber_id.eq(subscriber_id))
        .filter(deliveries::kind.eq(DeliveryKind::Confirmation.as_str()))
        .filter(deliveries::created_at.gt(now - Duration::hours(1)))
        .count()
        .get_result(conn)
}

/// What following a confirmation link did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfirmOutcome {
    Confirmed,
    AlreadyConfirmed,
    /// The link is too old (or was used by someone who has since left): offer a new one.
    Expired {
        email: String,
    },
    NotFound,
}

/// Confirms the subscriber a link belongs to, once; queues the welcome mail when asked to.
pub fn confirm_subscriber(
    conn: &mut DbConnection,
    token_hash: &str,
    context: &EventContext,
    send_welcome: bool,
) -> anyhow::Result<ConfirmOutcome> {
    write_tx(conn, |conn| {
        let now = now();
        let found: Option<(i64, NaiveDateTime, Option<NaiveDateTime>)> = confirmation_tokens::table
            .filter(confirmation_tokens::token_hash.eq(token_hash))
            .select((
                confirmation_tokens::subscriber_id,
                confirmation_tokens::expires_at,
                confirmation_tokens::used_at,
            ))
            .first(conn)
            .optional()?;
        let Some((subscriber_id, expires_at, used_at)) = found else {
            return Ok(ConfirmOutcome::NotFound);
        };
        let subscriber =
            find_subscriber(conn, subscriber_id)?.context("token without subscriber")?;
        let status = SubscriberStatus::parse(&subscriber.status);
        if status == Some(SubscriberStatus::Confirmed) {
            mark_token_used(conn, token_hash, now)?;
            return Ok(ConfirmOutcome::AlreadyConfirmed);
        }
        if used_at.is_some() || expires_at < now || status != Some(SubscriberStatus::Pending) {
            return Ok(ConfirmOutcome::Expired {
                email: subscriber.email,
            });
        }
        mark_token_used(conn, token_hash, now)?;
        diesel::update(subscribers::table.find(subscriber_id))
            .set((
                subscribers::status.eq(SubscriberStatus::Confirmed.as_str()),
                subscribers::confirmed_at.eq(now),
                subscribers::updated_at.eq(now),
            ))
            .execute(conn)?;
        insert_event(conn, subscriber_id, EventKind::Confirmed, context)?;
        if send_welcome {
            enqueue_for_subscribers(conn, DeliveryKind::Welcome, &[subscriber_id])?;
        }
        Ok(ConfirmOutcome::Confirmed)
    })
}

fn mark_token_used(
    conn: &mut DbConnection,
    token_hash: &str,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(
        confirmation_tokens::table
            .filter(confirmation_tokens::token_hash.eq(token_hash))
            .filter(confirmation_tokens::used_at.is_null()),
    )
    .set(confirmation_tokens::used_at.eq(now))
    .execute(conn)
}

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

/// One page of subscribers (newest first) and how many there are in all.
pub fn list_subscribers(
    conn: &mut DbConnection,
    status: Option<SubscriberStatus>,
    page: i64,
    per_page: i64,
) -> QueryResult<(Vec<Subscriber>, i64)> {
    let mut query = subscribers::table.into_boxed();
    let mut count = subscribers::table.into_boxed();
    if let Some(status) = status {
        query = query.filter(subscribers::status.eq(status.as_str()));
        count = count.filter(subscribers::status.eq(status.as_str()));
    }
    let total = count.count().get_result(conn)?;
    let rows = query
        .order(subscribers::id.desc())
        .limit(per_page)
        .offset((page - 1).max(0) * per_page)
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
