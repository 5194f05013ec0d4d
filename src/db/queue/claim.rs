//! Claiming due deliveries. A worker takes rows under a lease and a claim id of its own; the
//! hashes of the tokens its mail will carry are stored in the same transaction, before any copy
//! can leave. Which tokens and Message-IDs to use is the caller's business ([`RowSecrets`]).
//!
//! Mail a person waits for (confirmation, welcome) goes first; then digests, one digest at a
//! time in id order, read from the `(digest_id, status, id)` index, so the rows of a paused
//! digest are never walked past. A worker reads a digest on from the last row it claimed of it:
//! mail put back to wait behind it (a retry, a domain's pace) is walked only once the rest is
//! taken, not by every claim.

use std::collections::BTreeSet;

use chrono::{Duration, NaiveDateTime};
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bool, Integer, Nullable, Text};

use super::{DUE_MAIL, finish_digests_when_done};
use crate::db::schema::{
    confirmation_tokens, deliveries, digests, retired_unsubscribe_tokens, subscribers,
};
use crate::db::{DbConnection, now, write_tx};
use crate::domain::{DeliveryKind, DeliveryStatus, DigestStatus, SubscriberStatus};

/// What a worker asks for.
#[derive(Debug, Clone)]
pub struct ClaimRequest {
    /// Unique to this claim: outcomes are written only while a row still carries it.
    pub claim_id: i64,
    pub limit: i64,
    pub lease: Duration,
    /// Per digest, the highest id this worker claimed of it so far ([`Claim::digest_cursors`]):
    /// the claim reads on from there, and from the start only when that runs short.
    pub digest_cursors: std::collections::HashMap<i64, i64>,
}

/// A row the claim now holds.
#[derive(Debug, Clone)]
pub struct ClaimedRow {
    pub id: i64,
    pub claim_id: i64,
    pub kind: DeliveryKind,
    /// Counting this one.
    pub attempts: i32,
    pub subscriber_id: Option<i64>,
    pub digest_id: Option<i64>,
    pub email: String,
    pub name: Option<String>,
}

/// What the caller stores with a claimed row: its Message-ID and the hashes of the tokens its
/// mail carries.
#[derive(Debug, Clone, Default)]
pub struct RowSecrets {
    pub message_id: String,
    /// A confirmation link: the token's hash and when it stops working.
    pub confirmation: Option<(String, NaiveDateTime)>,
    pub unsubscribe_hash: Option<String>,
}

#[derive(Debug, Default)]
pub struct Claim {
    pub rows: Vec<ClaimedRow>,
    /// The digests that were sending when the claim was made.
    pub sending_digests: Vec<i64>,
    /// Those of them with nothing more due: once their last mail is recorded they are done.
    pub drained_digests: Vec<i64>,
    /// Per digest, the highest id claimed of it (for the next request's `digest_cursors`).
    pub digest_cursors: Vec<(i64, i64)>,
}

#[derive(Queryable, QueryableByName)]
struct DueRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Integer)]
    attempts: i32,
    #[diesel(sql_type = Nullable<BigInt>)]
    subscriber_id: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    digest_id: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    to_address: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    unsubscribe_token_hash: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    email: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    name: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    status: Option<String>,
}

/// The claimed rows with their recipients, in id order.
///
/// On PostgreSQL an unprepared statement, planned with its values each time. Prepared, a pooled
/// connection that first ran it while the tables were nearly empty kept that generic plan (a
/// hash join over two sequential scans) until the next ANALYZE: in the signup benchmark it was
/// 9 to 14 ms a claim and half of PostgreSQL's time, against well under a millisecond planned.
fn load_due_rows(conn: &mut DbConnection, ids: &[i64]) -> QueryResult<Vec<DueRow>> {
    match conn {
        DbConnection::Postgres(c) => diesel::sql_query(
            "SELECT d.id, d.kind, d.attempts, d.subscriber_id, d.digest_id, d.to_address,
                    d.unsubscribe_token_hash, s.email, s.name, s.status
             FROM deliveries AS d LEFT JOIN subscribers AS s ON s.id = d.subscriber_id
             WHERE d.id = ANY($1)
             ORDER BY d.id",
        )
        .bind::<Array<BigInt>, _>(ids)
        .load(c),
        DbConnection::Sqlite(c) => deliveries::table
            .left_join(subscribers::table)
            .filter(deliveries::id.eq_any(ids))
            .order(deliveries::id.asc())
            .select((
                deliveries::id,
                deliveries::kind,
                deliveries::attempts,
                deliveries::subscriber_id,
                deliveries::digest_id,
                deliveries::to_address,
                deliveries::unsubscribe_token_hash,
                subscribers::email.nullable(),
                subscribers::name.nullable(),
                subscribers::status.nullable(),
            ))
            .load(c),
    }
}

/// Claims up to `request.limit` due deliveries; `mint` gives each claimed row its secrets.
/// Rows whose recipient no longer wants the mail are marked `skipped` instead. PostgreSQL skips
/// rows other workers are claiming (`FOR UPDATE SKIP LOCKED`); SQLite has one writer, so its
/// `BEGIN IMMEDIATE` already serializes claims.
pub fn claim_due_deliveries(
    conn: &mut DbConnection,
    request: &ClaimRequest,
    mint: &mut dyn FnMut(&ClaimedRow) -> RowSecrets,
) -> anyhow::Result<Claim> {
    write_tx(conn, |conn| {
        let now = now();
        let mut ids = due_ids(conn, None, now, request.limit)?;
        let sending_digests: Vec<i64> = digests::table
            .filter(digests::status.eq(DigestStatus::Sending.as_str()))
            .order(digests::id)
            .select(digests::id)
            .load(conn)?;
        let mut drained_digests = Vec::new();
        let mut digest_cursors = Vec::new();
        for digest_id in &sending_digests {
            let room = request.limit - ids.len() as i64;
            if room <= 0 {
                break;
            }
            // Mail put back to wait (a retry, a domain's pace) stays queued behind the cursor:
            // claims read on past it, and walk it only once the rest is taken.
            let cursor = request.digest_cursors.get(digest_id).copied();
            let mut due = due_ids(conn, Some((*digest_id, cursor, Ahead)), now, room)?;
            if let Some(last) = due.last() {
                digest_cursors.push((*digest_id, *last));
            }
            if let Some(cursor) = cursor.filter(|_| (due.len() as i64) < room) {
                let rest = room - due.len() as i64;
                due.extend(due_ids(
                    conn,
                    Some((*digest_id, Some(cursor), Behind)),
                    now,
                    rest,
                )?);
            }
            if (due.len() as i64) < room {
                drained_digests.push(*digest_id);
            }
            ids.extend(due);
        }
        if ids.is_empty() {
            return Ok(Claim {
                rows: Vec::new(),
                sending_digests,
                drained_digests,
                digest_cursors,
            });
        }
        let due = load_due_rows(conn, &ids)?;

        let mut rows = Vec::with_capacity(due.len());
        let mut leases = Vec::with_capacity(due.len());
        let mut confirmations = Vec::new();
        let mut retired = Vec::new();
        let mut skipped = Vec::new();
        let mut touched_digests = BTreeSet::new();
        for due in due {
            let Some((kind, email)) = wanted(&due) else {
                skipped.push(due.id);
                touched_digests.extend(due.digest_id);
                continue;
            };
            let row = ClaimedRow {
                id: due.id,
                claim_id: request.claim_id,
                kind,
                attempts: due.attempts + 1,
                subscriber_id: due.subscriber_id,
                digest_id: due.digest_id,
                email,
                name: due.name,
            };
            let secrets = mint(&row);
            if let (Some((hash, expires_at)), Some(subscriber_id)) =
                (secrets.confirmation, row.subscriber_id)
            {
                confirmations.push((
                    confirmation_tokens::subscriber_id.eq(subscriber_id),
                    confirmation_tokens::token_hash.eq(hash),
                    confirmation_tokens::created_at.eq(now),
                    confirmation_tokens::expires_at.eq(expires_at),
                ));
            }
            // A copy may have left with the earlier token (its 250 lost, its worker killed):
            // that link keeps working.
            if let Some(previous) = due.unsubscribe_token_hash {
                retired.push((
                    retired_unsubscribe_tokens::token_hash.eq(previous),
                    retired_unsubscribe_tokens::delivery_id.eq(row.id),
                    retired_unsubscribe_tokens::created_at.eq(now),
                ));
            }
            leases.push((row.id, secrets.message_id, secrets.unsubscribe_hash));
            rows.push(row);
        }
        // Multi-row inserts need the concrete backend.
        if !confirmations.is_empty() {
            crate::on_backend!(&mut *conn, |c| diesel::insert_into(
                confirmation_tokens::table
            )
            .values(&confirmations)
            .execute(c))?;
        }
        if !retired.is_empty() {
            crate::on_backend!(&mut *conn, |c| diesel::insert_into(
                retired_unsubscribe_tokens::table
            )
            .values(&retired)
            .on_conflict_do_nothing()
            .execute(c))?;
        }
        take_leases(conn, request.claim_id, leases, now + request.lease)?;
        if !skipped.is_empty() {
            diesel::update(deliveries::table.filter(deliveries::id.eq_any(&skipped)))
                .set((
                    deliveries::status.eq(DeliveryStatus::Skipped.as_str()),
                    deliveries::lease_expires_at.eq(None::<NaiveDateTime>),
                ))
                .execute(conn)?;
            finish_digests_when_done(conn, &touched_digests, now)?;
        }
        Ok(Claim {
            rows,
            sending_digests,
            drained_digests,
            digest_cursors,
        })
    })
}

/// Which side of a digest's cursor a claim reads.
#[derive(Clone, Copy)]
enum Side {
    /// Past the cursor (everything, without one).
    Ahead,
    /// Up to and including it.
    Behind,
}
use Side::{Ahead, Behind};

/// Due, queued rows in id order: mail people wait for (`digest` = None, priority 0), or one
/// digest's on one side of a cursor.
fn due_ids(
    conn: &mut DbConnection,
    digest: Option<(i64, Option<i64>, Side)>,
    now: NaiveDateTime,
    limit: i64,
) -> QueryResult<Vec<i64>> {
    match digest {
        None => {
            let due = deliveries::table
                .filter(sql::<Bool>(DUE_MAIL))
                .filter(deliveries::next_attempt_at.le(now))
                .order((deliveries::next_attempt_at.asc(), deliveries::id.asc()))
                .limit(limit)
                .select(deliveries::id);
            match conn {
                DbConnection::Postgres(c) => due.for_update().skip_locked().load(c),
                DbConnection::Sqlite(c) => due.load(c),
            }
        }
        Some((digest_id, cursor, side)) => {
            let (after, up_to) = match (cursor, side) {
                (None, _) => (i64::MIN, i64::MAX),
                (Some(cursor), Ahead) => (cursor, i64::MAX),
                (Some(cursor), Behind) => (i64::MIN, cursor),
            };
            let due = deliveries::table
                .filter(deliveries::status.eq(DeliveryStatus::Queued.as_str()))
                .filter(deliveries::digest_id.eq(digest_id))
                .filter(deliveries::id.gt(after))
                .filter(deliveries::id.le(up_to))
                .filter(deliveries::next_attempt_at.le(now))
                .order(deliveries::id.asc())
                .limit(limit)
                .select(deliveries::id);
            match conn {
                DbConnection::Postgres(c) => due.for_update().skip_locked().load(c),
                DbConnection::Sqlite(c) => due.load(c),
            }
        }
    }
}

/// The kind and address of a row whose recipient still wants its mail: a confirmation only
/// while pending, a welcome or digest only while confirmed, a test to its own address.
fn wanted(row: &DueRow) -> Option<(DeliveryKind, String)> {
    let kind = DeliveryKind::parse(&row.kind)?;
    let status = row.status.as_deref().and_then(SubscriberStatus::parse);
    let wanted = match kind {
        DeliveryKind::Confirmation => status == Some(SubscriberStatus::Pending),
        DeliveryKind::Welcome | DeliveryKind::Digest => status == Some(SubscriberStatus::Confirmed),
        DeliveryKind::Test => row.to_address.is_some(),
    };
    let email = row.to_address.clone().or(row.email.clone())?;
    wanted.then_some((kind, email))
}

/// Marks claimed rows `sending` under this claim and lease, counts the attempt, and stores each
/// row's Message-ID and unsubscribe-token hash: one UPDATE per row version. PostgreSQL takes the
/// whole batch in one statement (a round trip per row would dominate a large send); SQLite is
/// in-process, where a statement per row inside the claim's transaction costs microseconds.
fn take_leases(
    conn: &mut DbConnection,
    claim_id: i64,
    rows: Vec<(i64, String, Option<String>)>,
    lease_until: NaiveDateTime,
) -> QueryResult<()> {
    use diesel::sql_types::Timestamp;
    match conn {
        DbConnection::Postgres(c) => {
            let mut ids = Vec::with_capacity(rows.len());
            let mut message_ids = Vec::with_capacity(rows.len());
            let mut hashes = Vec::with_capacity(rows.len());
            for (id, message_id, hash) in rows {
                ids.push(id);
                message_ids.push(message_id);
                hashes.push(hash);
            }
            diesel::sql_query(
                "UPDATE deliveries AS d SET status = 'sending', lease_expires_at = $4, claim_id = $5,
                     attempts = d.attempts + 1, message_id = v.message_id, unsubscribe_token_hash = v.hash
                 FROM (SELECT unnest($1) AS id, unnest($2) AS message_id, unnest($3) AS hash) AS v
                 WHERE d.id = v.id",
            )
            .bind::<Array<BigInt>, _>(ids)
            .bind::<Array<Text>, _>(message_ids)
            .bind::<Array<Nullable<Text>>, _>(hashes)
            .bind::<Timestamp, _>(lease_until)
            .bind::<BigInt, _>(claim_id)
            .execute(c)?;
        }
        DbConnection::Sqlite(_) => {
            for (id, message_id, hash) in rows {
                diesel::update(deliveries::table.find(id))
                    .set((
                        deliveries::status.eq(DeliveryStatus::Sending.as_str()),
                        deliveries::lease_expires_at.eq(lease_until),
                        deliveries::claim_id.eq(claim_id),
                        deliveries::attempts.eq(deliveries::attempts + 1),
                        deliveries::message_id.eq(message_id),
                        deliveries::unsubscribe_token_hash.eq(hash),
                    ))
                    .execute(conn)?;
            }
        }
    }
    Ok(())
}
