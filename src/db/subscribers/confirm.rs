//! Following a confirmation link: the subscriber is confirmed once and welcomed once, however
//! many times (and however concurrently) the link is followed. Each step is a conditional
//! update that acts on its row count, so of twenty simultaneous clicks exactly one confirms.
//!
//! Opening the link only looks ([`check_confirmation_link`]): mail scanners open every link in
//! a mail, so only the button on that page, a POST, confirms.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::{Subscriber, find_subscriber};
use crate::db::events::{EventContext, insert_event};
use crate::db::queue::enqueue_for_subscribers;
use crate::db::schema::{confirmation_tokens, subscribers};
use crate::db::{DbConnection, now, write_tx};
use crate::domain::{DeliveryKind, EventKind, SubscriberStatus};

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

/// What the page behind a confirmation link offers, without changing anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkCheck {
    /// The link is good: the page shows the button that confirms.
    Confirmable {
        email: String,
    },
    AlreadyConfirmed,
    Expired {
        email: String,
    },
    NotFound,
}

/// Looks at a confirmation link as [`confirm_subscriber`] would, and changes nothing.
pub fn check_confirmation_link(
    conn: &mut DbConnection,
    token_hash: &str,
) -> QueryResult<LinkCheck> {
    let now = now();
    let found: Option<(i64, Option<NaiveDateTime>, NaiveDateTime)> = confirmation_tokens::table
        .filter(confirmation_tokens::token_hash.eq(token_hash))
        .select((
            confirmation_tokens::subscriber_id,
            confirmation_tokens::used_at,
            confirmation_tokens::expires_at,
        ))
        .first(conn)
        .optional()?;
    let Some((subscriber_id, used_at, expires_at)) = found else {
        return Ok(LinkCheck::NotFound);
    };
    let Some(subscriber) = find_subscriber(conn, subscriber_id)? else {
        return Ok(LinkCheck::NotFound);
    };
    Ok(match SubscriberStatus::parse(&subscriber.status) {
        Some(SubscriberStatus::Confirmed) => LinkCheck::AlreadyConfirmed,
        Some(SubscriberStatus::Pending) if used_at.is_none() && expires_at >= now => {
            LinkCheck::Confirmable {
                email: subscriber.email,
            }
        }
        _ => LinkCheck::Expired {
            email: subscriber.email,
        },
    })
}

/// Whom a confirmation link was sent to, whatever became of the link since.
pub fn find_subscriber_by_confirmation_token(
    conn: &mut DbConnection,
    token_hash: &str,
) -> QueryResult<Option<Subscriber>> {
    confirmation_tokens::table
        .inner_join(subscribers::table)
        .filter(confirmation_tokens::token_hash.eq(token_hash))
        .select(Subscriber::as_select())
        .first(conn)
        .optional()
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
        let found: Option<i64> = confirmation_tokens::table
            .filter(confirmation_tokens::token_hash.eq(token_hash))
            .select(confirmation_tokens::subscriber_id)
            .first(conn)
            .optional()?;
        let Some(subscriber_id) = found else {
            return Ok(ConfirmOutcome::NotFound);
        };
        // The link is spent by the one request that marks it used while it is still good.
        let spent = diesel::update(
            confirmation_tokens::table
                .filter(confirmation_tokens::token_hash.eq(token_hash))
                .filter(confirmation_tokens::used_at.is_null())
                .filter(confirmation_tokens::expires_at.ge(now)),
        )
        .set(confirmation_tokens::used_at.eq(now))
        .execute(conn)?;
        // And the subscriber is confirmed by the one request that finds them still pending
        // (another of their links may be followed at the same moment).
        let confirmed = if spent == 1 {
            confirm_pending(conn, subscriber_id, now)?
        } else {
            0
        };
        if confirmed == 1 {
            insert_event(conn, subscriber_id, EventKind::Confirmed, context)?;
            if send_welcome {
                enqueue_for_subscribers(conn, DeliveryKind::Welcome, &[subscriber_id])?;
            }
            return Ok(ConfirmOutcome::Confirmed);
        }
        let Some(subscriber) = find_subscriber(conn, subscriber_id)? else {
            return Ok(ConfirmOutcome::NotFound);
        };
        Ok(match SubscriberStatus::parse(&subscriber.status) {
            Some(SubscriberStatus::Confirmed) => ConfirmOutcome::AlreadyConfirmed,
            _ => ConfirmOutcome::Expired {
                email: subscriber.email,
            },
        })
    })
}

fn confirm_pending(
    conn: &mut DbConnection,
    subscriber_id: i64,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(
        subscribers::table
            .find(subscriber_id)
            .filter(subscribers::status.eq(SubscriberStatus::Pending.as_str())),
    )
    .set((
        subscribers::status.eq(SubscriberStatus::Confirmed.as_str()),
        subscribers::confirmed_at.eq(now),
        subscribers::updated_at.eq(now),
    ))
    .execute(conn)
}
