//! Importing a list. People keep the choices the file records: unsubscribed and bounced people
//! stay so and are never mailed, so an export imported into a fresh database reproduces every
//! status. People without a status are added pending and asked to confirm, unless staff vouch
//! for their consent, which the ledger then records in their words. Erased (suppressed)
//! addresses and addresses already on the list are left alone.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::{NewSubscriber, find_subscriber_by_email, insert_subscriber};
use crate::db::events::{EventContext, insert_event};
use crate::db::queue::enqueue_for_subscribers;
use crate::db::schema::suppressions;
use crate::db::{DbConnection, now, write_tx};
use crate::domain::{DeliveryKind, EventKind, SubscriberEmail, SubscriberName, SubscriberStatus};

/// One person of an import file.
#[derive(Debug, Clone)]
pub struct ImportedPerson {
    pub email: SubscriberEmail,
    pub name: Option<SubscriberName>,
    /// The status the file gives, when it has a `status` column.
    pub status: Option<SubscriberStatus>,
    pub created_at: Option<NaiveDateTime>,
    pub confirmed_at: Option<NaiveDateTime>,
    pub unsubscribed_at: Option<NaiveDateTime>,
}

impl ImportedPerson {
    pub fn new(email: SubscriberEmail, name: Option<SubscriberName>) -> ImportedPerson {
        ImportedPerson {
            email,
            name,
            status: None,
            created_at: None,
            confirmed_at: None,
            unsubscribed_at: None,
        }
    }
}

/// How people without a status in the file are added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WithoutStatus {
    /// Pending, with a confirmation mail: they opt in themselves.
    Pending,
    /// Confirmed on the staff's word; `consent` says how they agreed and goes in the ledger.
    Confirmed { consent: String },
}

/// What an import did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImportReport {
    pub imported: usize,
    /// Of the imported, those added pending: each is sent a confirmation mail (a link they
    /// were sent before belongs to wherever the list came from).
    pub asked_to_confirm: usize,
    /// Already on the list (any status, any letter case): left as they are.
    pub existing: usize,
    /// Erased earlier at their request: never re-added.
    pub suppressed: usize,
}

impl std::ops::AddAssign for ImportReport {
    fn add_assign(&mut self, other: ImportReport) {
        self.imported += other.imported;
        self.asked_to_confirm += other.asked_to_confirm;
        self.existing += other.existing;
        self.suppressed += other.suppressed;
    }
}

/// People per transaction when a whole file is imported.
const BATCH: usize = 500;

/// Imports a file's `people` in transactions of 500, calling `progress` with each one's report;
/// returns the total.
pub async fn import_in_batches(
    db: &crate::db::Db,
    people: &[ImportedPerson],
    without_status: &WithoutStatus,
    source: &str,
    mut progress: impl FnMut(&ImportReport),
) -> anyhow::Result<ImportReport> {
    let mut total = ImportReport::default();
    for chunk in people.chunks(BATCH) {
        let (chunk, without_status, source) =
            (chunk.to_vec(), without_status.clone(), source.to_string());
        let report = db
            .run(move |conn| import_subscribers(conn, &chunk, &without_status, &source))
            .await?;
        progress(&report);
        total += report;
    }
    Ok(total)
}

/// Imports `people` in one transaction; `source` names the file for the ledger.
pub fn import_subscribers(
    conn: &mut DbConnection,
    people: &[ImportedPerson],
    without_status: &WithoutStatus,
    source: &str,
) -> anyhow::Result<ImportReport> {
    write_tx(conn, |conn| {
        let mut report = ImportReport::default();
        let mut to_confirm = Vec::new();
        for person in people {
            let hash = crate::domain::hash_email(person.email.as_str());
            let suppressed: i64 = suppressions::table.find(&hash).count().get_result(conn)?;
            if suppressed > 0 {
                report.suppressed += 1;
                continue;
            }
            if find_subscriber_by_email(conn, person.email.as_str())?.is_some() {
                report.existing += 1;
                continue;
            }
            let (status, evidence) = match (person.status, without_status) {
                (Some(status), _) => (status, format!("status {status} in the imported file")),
                (None, WithoutStatus::Pending) => (
                    SubscriberStatus::Pending,
                    "imported without a status; asked to confirm by mail".to_string(),
                ),
                (None, WithoutStatus::Confirmed { consent }) => {
                    (SubscriberStatus::Confirmed, format!("consent: {consent}"))
                }
            };
            let id = insert(conn, person, status)?;
            let context =
                EventContext::from_source("import").with_detail(format!("{evidence} ({source})"));
            insert_event(conn, id, EventKind::Subscribed, &context)?;
            let after = match status {
                SubscriberStatus::Pending => None,
                SubscriberStatus::Confirmed => Some(EventKind::Confirmed),
                SubscriberStatus::Unsubscribed => Some(EventKind::Unsubscribed),
                SubscriberStatus::Bounced => Some(EventKind::Bounced),
            };
            match after {
                Some(kind) => insert_event(conn, id, kind, &context)?,
                None => to_confirm.push(id),
            }
            report.imported += 1;
        }
        enqueue_for_subscribers(conn, DeliveryKind::Confirmation, &to_confirm)?;
        report.asked_to_confirm = to_confirm.len();
        Ok(report)
    })
}

fn insert(
    conn: &mut DbConnection,
    person: &ImportedPerson,
    status: SubscriberStatus,
) -> QueryResult<i64> {
    let now = now();
    let created_at = person.created_at.unwrap_or(now);
    let confirmed_at = match status {
        SubscriberStatus::Pending => None,
        SubscriberStatus::Confirmed => person.confirmed_at.or(Some(now)),
        _ => person.confirmed_at,
    };
    let unsubscribed_at = match status {
        SubscriberStatus::Unsubscribed => person.unsubscribed_at.or(Some(now)),
        _ => None,
    };
    insert_subscriber(
        conn,
        &NewSubscriber {
            email: person.email.as_str(),
            email_key: person.email.key(),
            name: person.name.as_ref().map(SubscriberName::as_str),
            status: status.as_str(),
            created_at,
            updated_at: now,
            confirmed_at,
            unsubscribed_at,
        },
    )
}
