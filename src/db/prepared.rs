//! The statements of a signup batch on PostgreSQL, written so that diesel prepares each once
//! per connection: arrays in, one statement whatever the batch's size.
//!
//! diesel never caches raw SQL (`sql_query`) or a multi-row insert of a varying number of rows:
//! each is parsed, analysed and planned anew. In the signup benchmark that was a fifth of
//! PostgreSQL's time. These are `QueryFragment`s of their own with a static query id, which
//! diesel's statement cache keeps. Only inserts are written this way: a prepared statement may
//! get a generic plan, and a join planned without its arrays' sizes can pick a bad one (see
//! [`crate::db::queue`]'s unprepared reads).

use chrono::NaiveDateTime;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{Array, BigInt, Integer, Nullable, Text, Timestamp};

/// New pending subscribers, inserted in key order; an address on the list already is left out.
/// Returns (id, email_key) of those inserted.
pub struct InsertPending<'a> {
    pub emails: Vec<&'a str>,
    pub keys: Vec<&'a str>,
    pub names: Vec<Option<&'a str>>,
    pub status: &'a str,
    pub now: NaiveDateTime,
}

pub struct InsertPendingId;

impl QueryId for InsertPending<'_> {
    type QueryId = InsertPendingId;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl Query for InsertPending<'_> {
    type SqlType = (BigInt, Text);
}

impl RunQueryDsl<PgConnection> for InsertPending<'_> {}

impl QueryFragment<Pg> for InsertPending<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql(
            "INSERT INTO subscribers (email, email_key, name, status, created_at, updated_at) \
             SELECT email, email_key, name, ",
        );
        out.push_bind_param::<Text, _>(&self.status)?;
        out.push_sql(", ");
        out.push_bind_param::<Timestamp, _>(&self.now)?;
        out.push_sql(", ");
        out.push_bind_param::<Timestamp, _>(&self.now)?;
        out.push_sql(" FROM unnest(");
        out.push_bind_param::<Array<Text>, _>(&self.emails)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.keys)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.names)?;
        out.push_sql(
            ") AS v (email, email_key, name) ORDER BY email_key \
             ON CONFLICT (email_key) DO NOTHING RETURNING id, email_key",
        );
        Ok(())
    }
}

/// Ledger entries of one kind, one per row of the arrays.
pub struct InsertEvents<'a> {
    pub subscriber_ids: Vec<i64>,
    pub kind: &'a str,
    pub ips: Vec<Option<&'a str>>,
    pub user_agents: Vec<Option<&'a str>>,
    pub sources: Vec<&'a str>,
    pub details: Vec<Option<&'a str>>,
    pub now: NaiveDateTime,
}

pub struct InsertEventsId;

impl QueryId for InsertEvents<'_> {
    type QueryId = InsertEventsId;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl RunQueryDsl<PgConnection> for InsertEvents<'_> {}

impl QueryFragment<Pg> for InsertEvents<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql(
            "INSERT INTO subscriber_events \
             (subscriber_id, kind, ip, user_agent, source, detail, created_at) \
             SELECT subscriber_id, ",
        );
        out.push_bind_param::<Text, _>(&self.kind)?;
        out.push_sql(", ip, user_agent, source, detail, ");
        out.push_bind_param::<Timestamp, _>(&self.now)?;
        out.push_sql(" FROM unnest(");
        out.push_bind_param::<Array<BigInt>, _>(&self.subscriber_ids)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.ips)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.user_agents)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.sources)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.details)?;
        out.push_sql(") AS v (subscriber_id, ip, user_agent, source, detail)");
        Ok(())
    }
}

/// Confirmations written `sending` under a claim, with their tokens' hashes, one per
/// subscriber: draws the ids, writes each row once with its Message-ID, and the tokens.
/// Returns (delivery id, subscriber id).
pub struct HandConfirmations<'a> {
    pub subscriber_ids: &'a [i64],
    pub token_hashes: Vec<String>,
    pub kind: &'a str,
    pub priority: i32,
    pub status: &'a str,
    pub now: NaiveDateTime,
    pub lease_until: NaiveDateTime,
    pub claim_id: i64,
    pub message_id_around: &'a (String, String),
    pub token_expires_at: NaiveDateTime,
}

pub struct HandConfirmationsId;

impl QueryId for HandConfirmations<'_> {
    type QueryId = HandConfirmationsId;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl Query for HandConfirmations<'_> {
    type SqlType = (BigInt, BigInt);
}

impl RunQueryDsl<PgConnection> for HandConfirmations<'_> {}

impl QueryFragment<Pg> for HandConfirmations<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql(
            "WITH drawn AS MATERIALIZED ( \
                 SELECT nextval(pg_get_serial_sequence('deliveries', 'id')) AS id, \
                        subscriber_id, token_hash \
                 FROM unnest(",
        );
        out.push_bind_param::<Array<BigInt>, _>(self.subscriber_ids)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.token_hashes)?;
        out.push_sql(
            ") AS s (subscriber_id, token_hash) \
             ), delivery AS ( \
                 INSERT INTO deliveries (id, kind, priority, subscriber_id, status, attempts, \
                     next_attempt_at, lease_expires_at, claim_id, message_id, created_at) \
                 SELECT id, ",
        );
        out.push_bind_param::<Text, _>(&self.kind)?;
        out.push_sql(", ");
        out.push_bind_param::<Integer, _>(&self.priority)?;
        out.push_sql(", subscriber_id, ");
        out.push_bind_param::<Text, _>(&self.status)?;
        out.push_sql(", 1, ");
        out.push_bind_param::<Timestamp, _>(&self.now)?;
        out.push_sql(", ");
        out.push_bind_param::<Timestamp, _>(&self.lease_until)?;
        out.push_sql(", ");
        out.push_bind_param::<BigInt, _>(&self.claim_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(&self.message_id_around.0)?;
        out.push_sql(" || id || ");
        out.push_bind_param::<Text, _>(&self.message_id_around.1)?;
        out.push_sql(", ");
        out.push_bind_param::<Timestamp, _>(&self.now)?;
        out.push_sql(
            " FROM drawn \
             ), token AS ( \
                 INSERT INTO confirmation_tokens (subscriber_id, token_hash, created_at, \
                     expires_at) \
                 SELECT subscriber_id, token_hash, ",
        );
        out.push_bind_param::<Timestamp, _>(&self.now)?;
        out.push_sql(", ");
        out.push_bind_param::<Timestamp, _>(&self.token_expires_at)?;
        out.push_sql(" FROM drawn) SELECT id, subscriber_id FROM drawn");
        Ok(())
    }
}
