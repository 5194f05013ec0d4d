//! Automations: a feed, a schedule, a subject and a mode. A run is taken by moving the row's
//! `next_run_at` on from the value it was read with, so among several instances on one
//! PostgreSQL exactly one runs each due time.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;

use super::schema::automations;
use super::{DbConnection, now, write_tx};

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = automations)]
pub struct Automation {
    pub id: i64,
    pub feed_url: String,
    pub schedule: String,
    pub subject: String,
    pub mode: String,
    /// Who gets "ready for review", comma-separated; None: every staff account.
    pub notify: Option<String>,
    #[serde(skip)]
    pub etag: Option<String>,
    #[serde(skip)]
    pub last_modified: Option<String>,
    pub next_run_at: NaiveDateTime,
    pub last_run_at: Option<NaiveDateTime>,
    pub last_outcome: Option<String>,
    pub last_digest_id: Option<i64>,
    pub created_at: NaiveDateTime,
}

/// A new automation, its fields checked.
#[derive(Debug, Clone)]
pub struct NewAutomation {
    pub feed_url: String,
    pub schedule: String,
    pub subject: String,
    pub mode: String,
    pub notify: Option<String>,
    pub next_run_at: NaiveDateTime,
}

pub fn insert_automation(
    conn: &mut DbConnection,
    new: &NewAutomation,
) -> anyhow::Result<Automation> {
    write_tx(conn, |conn| {
        let values = (
            automations::feed_url.eq(&new.feed_url),
            automations::schedule.eq(&new.schedule),
            automations::subject.eq(&new.subject),
            automations::mode.eq(&new.mode),
            automations::notify.eq(&new.notify),
            automations::next_run_at.eq(new.next_run_at),
            automations::created_at.eq(now()),
        );
        let id: i64 = crate::on_backend!(conn, |c| diesel::insert_into(automations::table)
            .values(values)
            .returning(automations::id)
            .get_result(c))?;
        Ok(automations::table
            .find(id)
            .select(Automation::as_select())
            .first(conn)?)
    })
}

pub fn list_automations(conn: &mut DbConnection) -> QueryResult<Vec<Automation>> {
    automations::table
        .order(automations::id)
        .select(Automation::as_select())
        .load(conn)
}

pub fn find_automation(conn: &mut DbConnection, id: i64) -> QueryResult<Option<Automation>> {
    automations::table
        .find(id)
        .select(Automation::as_select())
        .first(conn)
        .optional()
}

/// Deletes an automation; false when there was none. Its digests stay.
pub fn delete_automation(conn: &mut DbConnection, id: i64) -> QueryResult<bool> {
    Ok(diesel::delete(automations::table.find(id)).execute(conn)? == 1)
}

/// The automations due now with the time each was due, each taken by moving its next run to
/// `next(automation)`. Only those this call moved are returned: another instance that read
/// the same row first took it.
pub fn take_due_automations(
    conn: &mut DbConnection,
    next: impl Fn(&Automation) -> NaiveDateTime,
) -> QueryResult<Vec<(Automation, NaiveDateTime)>> {
    let due: Vec<Automation> = automations::table
        .filter(automations::next_run_at.le(now()))
        .order(automations::next_run_at)
        .select(Automation::as_select())
        .load(conn)?;
    let mut taken = Vec::with_capacity(due.len());
    for mut automation in due {
        let following = next(&automation);
        let moved = diesel::update(
            automations::table
                .find(automation.id)
                .filter(automations::next_run_at.eq(automation.next_run_at)),
        )
        .set(automations::next_run_at.eq(following))
        .execute(conn)?;
        if moved == 1 {
            let due = std::mem::replace(&mut automation.next_run_at, following);
            taken.push((automation, due));
        }
    }
    Ok(taken)
}

/// What a run did, kept on the automation for staff to see, with the feed's validators for
/// the next conditional fetch.
#[derive(Debug, Clone, Default)]
pub struct RunRecord {
    pub outcome: String,
    /// The digest it made, or the one an earlier run made.
    pub digest_id: Option<i64>,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

pub fn record_run(conn: &mut DbConnection, id: i64, run: &RunRecord) -> QueryResult<()> {
    diesel::update(automations::table.find(id))
        .set((
            automations::last_run_at.eq(now()),
            automations::last_outcome.eq(&run.outcome),
            automations::last_digest_id.eq(run.digest_id),
            automations::etag.eq(&run.etag),
            automations::last_modified.eq(&run.last_modified),
        ))
        .execute(conn)?;
    Ok(())
}
