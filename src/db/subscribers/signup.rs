//! Signups: a pending subscriber, a `subscribed` entry in the ledger and a queued confirmation,
//! written for a whole batch of concurrent signups at once (see [`crate::db::group_commit`]).
//! An address is matched by its key (see [`crate::domain::email_key`]), so `Maria@Example.org`
//! signing up again as `maria@example.org` is the same person.

use std::collections::{HashMap, HashSet};

use anyhow::Context;
use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::{NewSubscriber, Subscriber};
use crate::db::events::{EventContext, insert_event, insert_events};
use crate::db::queue::{
    HandTerms, HandedConfirmation, enqueue_for_subscribers, hand_confirmations,
};
use crate::db::schema::{deliveries, subscribers};
use crate::db::{DbConnection, now};
use crate::domain::{
    DeliveryKind, EventKind, LinkLimit, SubscriberEmail, SubscriberName, SubscriberStatus,
};

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

/// A signup as the form or the API received it.
#[derive(Debug, Clone)]
pub struct Signup {
    pub email: SubscriberEmail,
    pub name: Option<SubscriberName>,
    pub context: EventContext,
    pub links: LinkLimit,
}

/// Records signups inside the caller's write transaction (they are group-committed, see
/// [`crate::db::group_commit`]) and returns one outcome per signup, in order. Each signup is a
/// pending subscriber, a `subscribed` event and a confirmation. The confirmation is queued, and
/// its token made when a worker claims it; or, for up to `hand.room` new addresses, written
/// already claimed for this process's worker, with its token (see
/// [`crate::delivery::Handoff`]). Either way only the token's hash is stored.
///
/// New addresses, the common case, are written with one statement per table for the whole
/// batch; known addresses, and an address seen twice in one batch, go one by one after them.
/// A batch of new addresses reads nothing first: `ON CONFLICT DO NOTHING` tells the known.
pub fn record_signups(
    conn: &mut DbConnection,
    signups: &[Signup],
    hand: Option<&HandTerms<'_>>,
) -> anyhow::Result<Vec<(SignupOutcome, Option<HandedConfirmation>)>> {
    let keys: Vec<String> = signups.iter().map(|s| s.email.key()).collect();
    // Every address's first signup in the batch is tried as a new one; those on the list
    // already are not inserted, and go one by one with the repeats.
    let mut first_sightings = HashSet::new();
    let (fresh, repeats): (Vec<usize>, Vec<usize>) =
        (0..signups.len()).partition(|&i| first_sightings.insert(keys[i].as_str()));
    let mut later = repeats;

    let mut handed = Vec::new();
    // The signup that added each new subscriber, in the order of `events`.
    let mut added_by = Vec::with_capacity(fresh.len());
    if !fresh.is_empty() {
        let new: Vec<&Signup> = fresh.iter().map(|&i| &signups[i]).collect();
        let id_of = insert_pending(conn, &new)?;
        let mut events = Vec::with_capacity(fresh.len());
        for i in fresh {
            match id_of.get(&keys[i]) {
                Some(id) => {
                    events.push((*id, &signups[i].context));
                    added_by.push(i);
                }
                // On the list already, or added by another transaction meanwhile.
                None => later.push(i),
            }
        }
        insert_events(conn, EventKind::Subscribed, &events)?;
        let ids: Vec<i64> = events.iter().map(|(id, _)| *id).collect();
        let room = hand.map_or(0, |hand| hand.room.min(ids.len()));
        let (handed_ids, queued_ids) = ids.split_at(room);
        if let Some(hand) = hand.filter(|_| room > 0) {
            handed = hand_confirmations(conn, handed_ids, hand)?;
        }
        enqueue_for_subscribers(conn, DeliveryKind::Confirmation, queued_ids)?;
    }
    later.sort_unstable();
    let mut outcomes: Vec<(SignupOutcome, Option<HandedConfirmation>)> = (0..signups.len())
        .map(|_| (SignupOutcome::ConfirmationQueued, None))
        .collect();
    for i in later {
        outcomes[i].0 = record_signup(conn, &signups[i])?;
    }
    // Handed in the order of `events`, from its start.
    for (confirmation, i) in handed.into_iter().zip(added_by) {
        outcomes[i].1 = Some(confirmation);
    }
    Ok(outcomes)
}

/// Inserts pending subscribers for addresses not on the list; returns the new ids by key.
/// An address another transaction added meanwhile is left out (`ON CONFLICT DO NOTHING`, which
/// on PostgreSQL waits for that transaction), and rows go in key order, so two batches
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
            email_key: s.email.key(),
            name: s.name.as_ref().map(SubscriberName::as_str),
            status: SubscriberStatus::Pending.as_str(),
            created_at: now,
            updated_at: now,
            confirmed_at: None,
            unsubscribed_at: None,
        })
        .collect();
    values.sort_unstable_by(|a, b| a.email_key.cmp(&b.email_key));
    let inserted: Vec<(i64, String)> = match conn {
        DbConnection::Postgres(c) => crate::db::prepared::InsertPending {
            emails: values.iter().map(|v| v.email).collect(),
            keys: values.iter().map(|v| v.email_key.as_str()).collect(),
            names: values.iter().map(|v| v.name).collect(),
            status: SubscriberStatus::Pending.as_str(),
            now,
        }
        .load(c)?,
        DbConnection::Sqlite(c) => diesel::insert_into(subscribers::table)
            .values(&values)
            .on_conflict(subscribers::email_key)
            .do_nothing()
            .returning((subscribers::id, subscribers::email_key))
            .get_results(c)?,
    };
    Ok(inserted.into_iter().map(|(id, key)| (key, id)).collect())
}

/// One signup of an address that may already be on the list.
fn record_signup(conn: &mut DbConnection, signup: &Signup) -> anyhow::Result<SignupOutcome> {
    let now = now();
    let name = signup.name.as_ref();
    // On PostgreSQL the row stays locked to the end of the transaction, so two instances (or
    // two committers) signing up the same address take turns and the hourly link limit holds.
    let by_key = subscribers::table.filter(subscribers::email_key.eq(signup.email.key()));
    let existing = match conn {
        DbConnection::Postgres(c) => by_key
            .select(Subscriber::as_select())
            .for_update()
            .first(c)
            .optional()?,
        DbConnection::Sqlite(c) => by_key.select(Subscriber::as_select()).first(c).optional()?,
    };
    let subscriber_id = match existing {
        None => insert_pending(conn, &[signup])?
            .into_values()
            .next()
            .context("the address was added by another signup at the same moment; try again")?,
        Some(s) => match SubscriberStatus::parse(&s.status) {
            Some(SubscriberStatus::Confirmed) => return Ok(SignupOutcome::AlreadyConfirmed),
            Some(SubscriberStatus::Pending) => {
                if !signup
                    .links
                    .allows_another(links_sent_recently(conn, s.id, now)?)
                {
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

/// Confirmation links queued for a subscriber within [`LinkLimit::window`].
fn links_sent_recently(
    conn: &mut DbConnection,
    subscriber_id: i64,
    now: NaiveDateTime,
) -> QueryResult<i64> {
    deliveries::table
        .filter(deliveries::subscriber_id.eq(subscriber_id))
        .filter(deliveries::kind.eq(DeliveryKind::Confirmation.as_str()))
        .filter(deliveries::created_at.gt(now - LinkLimit::window()))
        .count()
        .get_result(conn)
}
