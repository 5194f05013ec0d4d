//! Following a confirmation link: the subscriber is confirmed once and welcomed.

use anyhow::Context;
use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::find_subscriber;
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
