//! Digests: a subject, a Markdown intro and a list of articles; sending one queues a delivery
//! per confirmed subscriber in a single INSERT … SELECT. Staff can pause, resume and cancel a
//! send; workers see the change at their next claim or record (see `crate::delivery`).

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Timestamp};
use serde::Serialize;

use super::articles::Article;
use super::queue::finish_digests_when_done;
use super::schema::{articles, deliveries, digest_articles, digests};
use super::{Db, DbConnection, now, write_tx};
use crate::domain::{DeliveryStatus, DigestStatus, FailureKind};

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = digests)]
pub struct Digest {
    pub id: i64,
    pub subject: String,
    pub intro: String,
    pub status: String,
    pub recipients: i64,
    pub created_at: NaiveDateTime,
    pub started_at: Option<NaiveDateTime>,
    pub finished_at: Option<NaiveDateTime>,
    pub status_reason: Option<String>,
    /// Shown in the public archive once it begins sending.
    pub archive: bool,
    /// When a scheduled digest is to start.
    pub scheduled_at: Option<NaiveDateTime>,
}

/// Which articles a new digest holds.
#[derive(Debug, Clone)]
pub enum ArticleChoice {
    Ids(Vec<i64>),
    PublishedSince(NaiveDateTime),
    /// Those in no digest that began sending: whatever was added since, however old its date
    /// (an article dated last week but imported today is still news to the readers).
    NotYetSent,
}

#[derive(Debug, thiserror::Error)]
pub enum CreateDigestError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<diesel::result::Error> for CreateDigestError {
    fn from(e: diesel::result::Error) -> Self {
        CreateDigestError::Unexpected(e.into())
    }
}

/// What staff give for a new digest.
#[derive(Debug, Clone)]
pub struct NewDigest {
    pub subject: String,
    pub intro: String,
    pub choice: ArticleChoice,
    /// Shown in the public archive once sent (the default); false keeps it out.
    pub archive: bool,
}

/// Creates a draft digest.
pub fn create_digest(
    conn: &mut DbConnection,
    new: &NewDigest,
) -> Result<(Digest, Vec<Article>), CreateDigestError> {
    let (subject, intro, choice) = (&new.subject, &new.intro, &new.choice);
    let result = write_tx(conn, |conn| {
        let chosen = match choose_articles(conn, choice)? {
            Ok(chosen) => chosen,
            Err(message) => return Ok(Err(message)),
        };
        let now = now();
        let values = (
            digests::subject.eq(subject),
            digests::intro.eq(intro),
            digests::status.eq(DigestStatus::Draft.as_str()),
            digests::created_at.eq(now),
            digests::archive.eq(new.archive),
        );
        let id: i64 = crate::on_backend!(conn, |c| diesel::insert_into(digests::table)
            .values(values)
            .returning(digests::id)
            .get_result(c))?;
        let links: Vec<_> = chosen
            .iter()
            .enumerate()
            .map(|(position, article)| {
                (
                    digest_articles::digest_id.eq(id),
                    digest_articles::article_id.eq(article.id),
                    digest_articles::position.eq(position as i32),
                )
            })
            .collect();
        for link in links {
            diesel::insert_into(digest_articles::table)
                .values(link)
                .execute(conn)?;
        }
        let digest = digests::table
            .find(id)
            .select(Digest::as_select())
            .first(conn)?;
        Ok(Ok((digest, chosen)))
    })?;
    result.map_err(CreateDigestError::Invalid)
}

fn choose_articles(
    conn: &mut DbConnection,
    choice: &ArticleChoice,
) -> anyhow::Result<Result<Vec<Article>, String>> {
    let chosen = match choice {
        ArticleChoice::Ids(ids) => {
            if ids.is_empty() {
                return Ok(Err("article_ids is empty".into()));
            }
            let found: Vec<Article> = articles::table
                .filter(articles::id.eq_any(ids))
                .select(Article::as_select())
                .load(conn)?;
            let mut ordered: Vec<Article> = Vec::with_capacity(ids.len());
            for id in ids {
                if ordered.iter().any(|a| a.id == *id) {
                    continue;
                }
                match found.iter().find(|a| a.id == *id) {
                    Some(article) => ordered.push(article.clone()),
                    None => return Ok(Err(format!("article {id} does not exist"))),
                }
            }
            ordered
        }
        ArticleChoice::PublishedSince(since) => published_since(conn, *since)?,
        ArticleChoice::NotYetSent => {
            let sent = digest_articles::table
                .inner_join(digests::table)
                .filter(digests::started_at.is_not_null())
                .select(digest_articles::article_id);
            articles::table
                .filter(diesel::dsl::not(articles::id.eq_any(sent)))
                .order((articles::published_at.desc(), articles::id.desc()))
                .select(Article::as_select())
                .load(conn)?
        }
    };
    if chosen.is_empty() {
        let none_at_all = matches!(choice, ArticleChoice::NotYetSent)
            && articles::table.count().get_result::<i64>(conn)? == 0;
        return Ok(Err(match choice {
            ArticleChoice::NotYetSent if none_at_all => {
                "there are no articles yet; import the site's feed or add articles first".into()
            }
            ArticleChoice::NotYetSent => {
                "every article is in a digest that was sent already; add articles or name article_ids or since".into()
            }
            _ => "no articles match; name article_ids or an earlier since".into(),
        }));
    }
    Ok(Ok(chosen))
}

fn published_since(conn: &mut DbConnection, since: NaiveDateTime) -> QueryResult<Vec<Article>> {
    articles::table
        .filter(articles::published_at.gt(since))
        .order((articles::published_at.desc(), articles::id.desc()))
        .select(Article::as_select())
        .load(conn)
}

pub fn find_digest(conn: &mut DbConnection, id: i64) -> QueryResult<Option<Digest>> {
    digests::table
        .find(id)
        .select(Digest::as_select())
        .first(conn)
        .optional()
}

pub fn list_digests(conn: &mut DbConnection) -> QueryResult<Vec<Digest>> {
    digests::table
        .order(digests::id.desc())
        .select(Digest::as_select())
        .load(conn)
}

/// The articles of a digest in their order.
pub fn digest_articles(conn: &mut DbConnection, digest_id: i64) -> QueryResult<Vec<Article>> {
    digest_articles::table
        .inner_join(articles::table)
        .filter(digest_articles::digest_id.eq(digest_id))
        .order(digest_articles::position)
        .select(Article::as_select())
        .load(conn)
}

/// What `send` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendStart {
    /// The digest went from draft to sending; this many deliveries were queued.
    Queued(i64),
    /// It was already sending or sent: nothing more was queued.
    AlreadyStarted,
    NotFound,
}

/// Queues one delivery per confirmed subscriber, once per digest, in one statement: "send now"
/// of a draft, a scheduled digest (before its time) or one that missed its time.
pub fn queue_digest(conn: &mut DbConnection, digest_id: i64) -> anyhow::Result<SendStart> {
    write_tx(conn, |conn| {
        let now = now();
        let started = diesel::update(
            digests::table
                .find(digest_id)
                .filter(digests::status.eq_any(DigestStatus::UNSENT.map(DigestStatus::as_str))),
        )
        .set((
            digests::status.eq(DigestStatus::Sending.as_str()),
            digests::started_at.eq(now),
            digests::status_reason.eq(None::<String>),
        ))
        .execute(conn)?;
        if started == 0 {
            let exists = find_digest(conn, digest_id)?.is_some();
            return Ok(if exists {
                SendStart::AlreadyStarted
            } else {
                SendStart::NotFound
            });
        }
        Ok(SendStart::Queued(enqueue_recipients(conn, digest_id, now)?))
    })
}

/// The deliveries of a digest that has just begun sending (in the caller's transaction): one
/// per confirmed subscriber, in one statement; a digest for nobody is finished at once.
fn enqueue_recipients(
    conn: &mut DbConnection,
    digest_id: i64,
    now: NaiveDateTime,
) -> anyhow::Result<i64> {
    Db::without_statement_timeout(conn)?;
    // The same statement on both backends but for the placeholder syntax. The digest was a
    // draft until this transaction, so it has no deliveries yet: a plain INSERT (no
    // ON CONFLICT, whose speculative insertion made a 1,000,000-row enqueue on PostgreSQL
    // ~50% slower), with the unique (digest_id, subscriber_id) still as the guard.
    let queued = match conn {
        DbConnection::Postgres(c) => diesel::sql_query(
            "INSERT INTO deliveries (kind, priority, subscriber_id, digest_id, status, attempts, next_attempt_at, created_at)
             SELECT 'digest', 1, s.id, $1, 'queued', 0, $2, $2 FROM subscribers s WHERE s.status = 'confirmed'",
        )
        .bind::<BigInt, _>(digest_id)
        .bind::<Timestamp, _>(now)
        .execute(c)?,
        DbConnection::Sqlite(c) => diesel::sql_query(
            "INSERT INTO deliveries (kind, priority, subscriber_id, digest_id, status, attempts, next_attempt_at, created_at)
             SELECT 'digest', 1, s.id, ?1, 'queued', 0, ?2, ?2 FROM subscribers s WHERE s.status = 'confirmed'",
        )
        .bind::<BigInt, _>(digest_id)
        .bind::<Timestamp, _>(now)
        .execute(c)?,
    } as i64;
    diesel::update(digests::table.find(digest_id))
        .set(digests::recipients.eq(queued))
        .execute(conn)?;
    if queued == 0 {
        finish_digests_when_done(conn, &BTreeSet::from([digest_id]), now)?;
    }
    Ok(queued)
}

/// What scheduling a digest did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScheduleOutcome {
    Scheduled,
    /// Only a draft, a scheduled digest (a new time) or one that missed its time can be
    /// scheduled; this one is in this status.
    NotFrom(DigestStatus),
    NotFound,
}

/// Schedules a digest to start at `at` (UTC); a scheduled one gets the new time.
pub fn schedule_digest(
    conn: &mut DbConnection,
    digest_id: i64,
    at: NaiveDateTime,
) -> anyhow::Result<ScheduleOutcome> {
    write_tx(conn, |conn| {
        let changed = diesel::update(
            digests::table
                .find(digest_id)
                .filter(digests::status.eq_any(DigestStatus::UNSENT.map(DigestStatus::as_str))),
        )
        .set((
            digests::status.eq(DigestStatus::Scheduled.as_str()),
            digests::scheduled_at.eq(at),
            digests::status_reason.eq(None::<String>),
        ))
        .execute(conn)?;
        if changed == 1 {
            return Ok(ScheduleOutcome::Scheduled);
        }
        Ok(
            match transition(conn, digest_id, 0, DigestStatus::Scheduled)? {
                Transition::NotFrom(status) => ScheduleOutcome::NotFrom(status),
                _ => ScheduleOutcome::NotFound,
            },
        )
    })
}

/// Takes a scheduled digest back to a draft (staff changed their mind before its time).
pub fn unschedule_digest(conn: &mut DbConnection, digest_id: i64) -> anyhow::Result<Transition> {
    write_tx(conn, |conn| {
        let changed = diesel::update(
            digests::table
                .find(digest_id)
                .filter(digests::status.eq(DigestStatus::Scheduled.as_str())),
        )
        .set((
            digests::status.eq(DigestStatus::Draft.as_str()),
            digests::scheduled_at.eq(None::<NaiveDateTime>),
        ))
        .execute(conn)?;
        transition(conn, digest_id, changed, DigestStatus::Draft)
    })
}

/// What became of a scheduled digest whose time came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DueDigest {
    /// It began sending: this many deliveries were queued.
    Started { id: i64, queued: i64 },
    /// It was not sent: found more than the grace late (the service was down), or the
    /// service may not send digests (`why`).
    Missed {
        id: i64,
        due: NaiveDateTime,
        why: &'static str,
    },
}

/// Starts the scheduled digests whose time has come, each in its own transaction; those
/// more than `grace` late become `missed` instead, as do all when `refusal` says why no digest
/// may go out (no postal address). Each moves only from `scheduled` with the time it was read
/// with, so of several instances doing this at once, one starts it.
pub fn start_due_digests(
    conn: &mut DbConnection,
    grace: chrono::Duration,
    refusal: Option<&str>,
) -> anyhow::Result<Vec<DueDigest>> {
    let due: Vec<(i64, Option<NaiveDateTime>)> = digests::table
        .filter(digests::status.eq(DigestStatus::Scheduled.as_str()))
        .filter(digests::scheduled_at.le(now()))
        .order(digests::scheduled_at)
        .select((digests::id, digests::scheduled_at))
        .load(conn)?;
    let mut moved = Vec::new();
    for (id, at) in due {
        let Some(at) = at else { continue };
        let outcome = write_tx(conn, |conn| {
            let now = now();
            let this = digests::table
                .find(id)
                .filter(digests::status.eq(DigestStatus::Scheduled.as_str()))
                .filter(digests::scheduled_at.eq(at));
            let missed = match refusal {
                Some(why) => Some((
                    "not ready",
                    format!(
                        "missed: it was due at {} UTC but was not sent: {why}",
                        at.format("%Y-%m-%d %H:%M")
                    ),
                )),
                None if now - at > grace => Some((
                    "too late",
                    format!(
                        "missed: it was due at {} UTC, when no worker was running, and was not \
                         sent late (delivery.schedule_grace_minutes is {}); send it now or \
                         schedule it again",
                        at.format("%Y-%m-%d %H:%M"),
                        grace.num_minutes()
                    ),
                )),
                None => None,
            };
            if let Some((why, reason)) = missed {
                let changed = diesel::update(this)
                    .set((
                        digests::status.eq(DigestStatus::Missed.as_str()),
                        digests::status_reason.eq(reason),
                    ))
                    .execute(conn)?;
                return Ok((changed == 1).then_some(DueDigest::Missed { id, due: at, why }));
            }
            let changed = diesel::update(this)
                .set((
                    digests::status.eq(DigestStatus::Sending.as_str()),
                    digests::started_at.eq(now),
                ))
                .execute(conn)?;
            if changed == 0 {
                return Ok(None);
            }
            let queued = enqueue_recipients(conn, id, now)?;
            Ok(Some(DueDigest::Started { id, queued }))
        })?;
        moved.extend(outcome);
    }
    Ok(moved)
}

/// How far a digest's send has come.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DigestProgress {
    pub id: i64,
    pub subject: String,
    pub status: String,
    /// Why it is paused or cancelled, in words for staff.
    pub status_reason: Option<String>,
    pub recipients: i64,
    /// Waiting or being sent right now.
    pub queued: i64,
    pub sent: i64,
    pub failed: i64,
    /// Not sent because the person left (or bounced) before their turn, or the send was
    /// cancelled.
    pub skipped: i64,
    /// The failures by cause: `bounce`, `recipient`, `sender` (refusals about us) and `local`.
    pub failures: BTreeMap<String, i64>,
    /// Readers whose copy came back as a hard bounce, or who complained, by mail afterwards.
    pub bounced: i64,
    pub complained: i64,
    pub started_at: Option<NaiveDateTime>,
    pub finished_at: Option<NaiveDateTime>,
    /// When a scheduled digest is to start (UTC).
    pub scheduled_at: Option<NaiveDateTime>,
}

pub fn digest_progress(
    conn: &mut DbConnection,
    digest_id: i64,
) -> QueryResult<Option<DigestProgress>> {
    let Some(digest) = find_digest(conn, digest_id)? else {
        return Ok(None);
    };
    let counts: Vec<(String, Option<String>, i64)> = deliveries::table
        .filter(deliveries::digest_id.eq(digest_id))
        .filter(deliveries::kind.eq("digest"))
        .group_by((deliveries::status, deliveries::failure))
        .select((
            deliveries::status,
            deliveries::failure,
            diesel::dsl::count_star(),
        ))
        .load(conn)?;
    let count = |wanted: &[DeliveryStatus]| -> i64 {
        counts
            .iter()
            .filter(|(status, _, _)| wanted.iter().any(|w| w.as_str() == status))
            .map(|(_, _, n)| n)
            .sum()
    };
    let mut failures: BTreeMap<String, i64> = [
        FailureKind::Bounce,
        FailureKind::Recipient,
        FailureKind::Sender,
        FailureKind::Local,
    ]
    .into_iter()
    .map(|kind| (kind.as_str().to_string(), 0))
    .collect();
    for (status, failure, n) in &counts {
        if let (DeliveryStatus::Failed, Some(failure)) = (
            DeliveryStatus::parse(status).unwrap_or(DeliveryStatus::Queued),
            failure,
        ) {
            *failures.entry(failure.clone()).or_default() += n;
        }
    }
    let (bounced, complained) = super::bounces::digest_bounce_counts(conn, digest_id)?;
    Ok(Some(DigestProgress {
        bounced,
        complained,
        id: digest.id,
        subject: digest.subject,
        status: digest.status,
        status_reason: digest.status_reason,
        recipients: digest.recipients,
        queued: count(&[DeliveryStatus::Queued, DeliveryStatus::Sending]),
        sent: count(&[DeliveryStatus::Sent]),
        failed: count(&[DeliveryStatus::Failed]),
        skipped: count(&[DeliveryStatus::Skipped]),
        failures,
        started_at: digest.started_at,
        finished_at: digest.finished_at,
        scheduled_at: digest.scheduled_at,
    }))
}

/// What a pause, resume or cancel did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// The digest is now in this status.
    Done(DigestStatus),
    /// It was in that status already: nothing changed.
    Already(DigestStatus),
    /// Not from this status (a draft cannot be paused, a sent digest not cancelled).
    NotFrom(DigestStatus),
    NotFound,
}

/// Stops a sending digest: nothing more is claimed, and workers hand back what they hold but
/// have not sent. `reason` says who paused it.
pub fn pause_digest(
    conn: &mut DbConnection,
    digest_id: i64,
    reason: &str,
) -> anyhow::Result<Transition> {
    write_tx(conn, |conn| {
        let changed = diesel::update(
            digests::table
                .find(digest_id)
                .filter(digests::status.eq(DigestStatus::Sending.as_str())),
        )
        .set((
            digests::status.eq(DigestStatus::Paused.as_str()),
            digests::status_reason.eq(reason),
        ))
        .execute(conn)?;
        transition(conn, digest_id, changed, DigestStatus::Paused)
    })
}

/// Sends a paused digest on from where it stopped. Mail refused for reasons about us (what
/// paused it, usually) is queued again; whatever was sent is not sent again.
pub fn resume_digest(conn: &mut DbConnection, digest_id: i64) -> anyhow::Result<Transition> {
    write_tx(conn, |conn| {
        let now = now();
        let changed = diesel::update(
            digests::table
                .find(digest_id)
                .filter(digests::status.eq(DigestStatus::Paused.as_str())),
        )
        .set((
            digests::status.eq(DigestStatus::Sending.as_str()),
            digests::status_reason.eq(None::<String>),
            digests::failure_streak.eq(0),
        ))
        .execute(conn)?;
        if changed == 1 {
            Db::without_statement_timeout(conn)?;
            diesel::update(
                deliveries::table
                    .filter(deliveries::digest_id.eq(digest_id))
                    .filter(deliveries::status.eq(DeliveryStatus::Failed.as_str()))
                    .filter(deliveries::failure.eq(FailureKind::Sender.as_str())),
            )
            .set((
                deliveries::status.eq(DeliveryStatus::Queued.as_str()),
                deliveries::failure.eq(None::<String>),
                deliveries::next_attempt_at.eq(now),
            ))
            .execute(conn)?;
            finish_digests_when_done(conn, &BTreeSet::from([digest_id]), now)?;
        }
        transition(conn, digest_id, changed, DigestStatus::Sending)
    })
}

/// Ends a send for good: everything not yet sent becomes `skipped`; what is in flight finishes.
pub fn cancel_digest(
    conn: &mut DbConnection,
    digest_id: i64,
    reason: &str,
) -> anyhow::Result<Transition> {
    write_tx(conn, |conn| {
        let now = now();
        let changed = diesel::update(digests::table.find(digest_id).filter(
            digests::status.eq_any([
                DigestStatus::Sending.as_str(),
                DigestStatus::Paused.as_str(),
                DigestStatus::Scheduled.as_str(),
            ]),
        ))
        .set((
            digests::status.eq(DigestStatus::Cancelled.as_str()),
            digests::status_reason.eq(reason),
            digests::finished_at.eq(now),
        ))
        .execute(conn)?;
        if changed == 1 {
            Db::without_statement_timeout(conn)?;
            diesel::update(
                deliveries::table
                    .filter(deliveries::digest_id.eq(digest_id))
                    .filter(deliveries::status.eq(DeliveryStatus::Queued.as_str())),
            )
            .set(deliveries::status.eq(DeliveryStatus::Skipped.as_str()))
            .execute(conn)?;
        }
        transition(conn, digest_id, changed, DigestStatus::Cancelled)
    })
}

fn transition(
    conn: &mut DbConnection,
    digest_id: i64,
    changed: usize,
    target: DigestStatus,
) -> anyhow::Result<Transition> {
    if changed == 1 {
        return Ok(Transition::Done(target));
    }
    let status = digests::table
        .find(digest_id)
        .select(digests::status)
        .first::<String>(conn)
        .optional()?;
    Ok(match status.as_deref().and_then(DigestStatus::parse) {
        None => Transition::NotFound,
        Some(status) if status == target => Transition::Already(status),
        Some(status) => Transition::NotFrom(status),
    })
}

/// What editing or deleting a draft did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DraftChange {
    Done,
    /// Only drafts change; this digest is in this status.
    NotDraft(String),
    NotFound,
    /// The new content does not hold (no articles, an unknown article).
    Invalid(String),
}

/// Replaces a draft's subject, intro, articles and archive choice, in one transaction that
/// first checks it is still a draft (a send started in another tab wins).
pub fn update_draft(
    conn: &mut DbConnection,
    digest_id: i64,
    new: &NewDigest,
) -> anyhow::Result<DraftChange> {
    write_tx(conn, |conn| {
        let Some(digest) = find_digest(conn, digest_id)? else {
            return Ok(DraftChange::NotFound);
        };
        if digest.status != DigestStatus::Draft.as_str() {
            return Ok(DraftChange::NotDraft(digest.status));
        }
        let chosen = match choose_articles(conn, &new.choice)? {
            Ok(chosen) => chosen,
            Err(message) => return Ok(DraftChange::Invalid(message)),
        };
        diesel::update(digests::table.find(digest_id))
            .set((
                digests::subject.eq(&new.subject),
                digests::intro.eq(&new.intro),
                digests::archive.eq(new.archive),
            ))
            .execute(conn)?;
        diesel::delete(digest_articles::table.filter(digest_articles::digest_id.eq(digest_id)))
            .execute(conn)?;
        for (position, article) in chosen.iter().enumerate() {
            diesel::insert_into(digest_articles::table)
                .values((
                    digest_articles::digest_id.eq(digest_id),
                    digest_articles::article_id.eq(article.id),
                    digest_articles::position.eq(position as i32),
                ))
                .execute(conn)?;
        }
        Ok(DraftChange::Done)
    })
}

/// Deletes a draft (its test mails' records go with it); a digest that was sent stays.
pub fn delete_draft(conn: &mut DbConnection, digest_id: i64) -> anyhow::Result<DraftChange> {
    write_tx(conn, |conn| {
        let Some(digest) = find_digest(conn, digest_id)? else {
            return Ok(DraftChange::NotFound);
        };
        if digest.status != DigestStatus::Draft.as_str() {
            return Ok(DraftChange::NotDraft(digest.status));
        }
        diesel::delete(deliveries::table.filter(deliveries::digest_id.eq(digest_id)))
            .execute(conn)?;
        diesel::delete(digest_articles::table.filter(digest_articles::digest_id.eq(digest_id)))
            .execute(conn)?;
        diesel::delete(digests::table.find(digest_id)).execute(conn)?;
        Ok(DraftChange::Done)
    })
}

/// The ids of articles that are in a digest that was sent (or is sending): those stay as they
/// were, since readers got them.
pub fn articles_in_sent_digests(conn: &mut DbConnection) -> QueryResult<BTreeSet<i64>> {
    let ids: Vec<i64> = digest_articles::table
        .inner_join(digests::table)
        .filter(digests::status.ne(DigestStatus::Draft.as_str()))
        .select(digest_articles::article_id)
        .distinct()
        .load(conn)?;
    Ok(ids.into_iter().collect())
}
