//! `newsletter subscribers list|export|import|unsubscribe|erase`: the list, for staff.

use std::io::Write;

use anyhow::{Context, bail};
use indicatif::ProgressBar;

use super::{SubscribersCommand, open_db};
use crate::configuration::Settings;
use crate::db::Db;
use crate::db::events::EventContext;
use crate::db::subscribers::{
    SubscriberFilter, WithoutStatus, erase_subscriber, find_subscriber_by_email, import_in_batches,
    list_subscribers, subscribers_after, unsubscribe_by_staff, why_they_left,
};
use crate::domain::{SubscriberEmail, SubscriberStatus};
use crate::list_csv;

pub async fn subscribers(settings: &Settings, command: SubscribersCommand) -> anyhow::Result<()> {
    let db = open_db(settings)?;
    match command {
        SubscribersCommand::List {
            status,
            email,
            page,
        } => {
            let filter = SubscriberFilter {
                status: parse_status(status.as_deref())?,
                email,
            };
            let (rows, total, left) = db
                .run(move |conn| {
                    let (rows, total) = list_subscribers(conn, &filter, page.max(1), 50)?;
                    let gone: Vec<i64> = rows
                        .iter()
                        .filter(|s| {
                            s.status != SubscriberStatus::Confirmed.as_str()
                                && s.status != SubscriberStatus::Pending.as_str()
                        })
                        .map(|s| s.id)
                        .collect();
                    Ok((rows, total, why_they_left(conn, &gone)?))
                })
                .await?;
            println!("{:>8}  {:<13} {:<17} EMAIL", "ID", "STATUS", "SINCE");
            for s in rows {
                println!(
                    "{:>8}  {:<13} {:<17} {}",
                    s.id,
                    s.status,
                    s.created_at.format("%Y-%m-%d %H:%M"),
                    s.email
                );
                // Why they left, with the evidence: the bounce's status and words, who
                // reported it, or how they asked.
                if let Some(left) = left.get(&s.id) {
                    let detail = left.detail.as_deref().map(|d| format!(": {d}"));
                    println!(
                        "          {} {} via {}{}",
                        left.kind,
                        left.at.format("%Y-%m-%d %H:%M"),
                        left.source,
                        detail.unwrap_or_default()
                    );
                }
            }
            eprintln!("page {} of {} subscriber(s)", page.max(1), total);
        }
        SubscribersCommand::Export { status, output } => {
            let status = parse_status(status.as_deref())?;
            let sink: Box<dyn Write> = match &output {
                Some(path) => Box::new(
                    std::fs::File::create(path)
                        .with_context(|| format!("creating {}", path.display()))?,
                ),
                None => Box::new(std::io::stdout().lock()),
            };
            let mut csv = csv::Writer::from_writer(sink);
            list_csv::write_header(&mut csv)?;
            let mut after = 0;
            let mut count = 0;
            loop {
                let batch = db
                    .run(move |conn| Ok(subscribers_after(conn, status, after, 1000)?))
                    .await?;
                let Some(last) = batch.last() else { break };
                after = last.id;
                for s in &batch {
                    list_csv::write_subscriber(&mut csv, s)?;
                }
                count += batch.len();
            }
            csv.flush()?;
            eprintln!("{count} subscriber(s) exported");
        }
        SubscribersCommand::Import {
            file,
            confirmed,
            consent,
        } => {
            let without_status = match (confirmed, consent) {
                (true, Some(consent)) if !consent.trim().is_empty() => WithoutStatus::Confirmed {
                    consent: consent.trim().to_string(),
                },
                (true, _) => bail!("--confirmed needs --consent \"how these people agreed\""),
                _ => WithoutStatus::Pending,
            };
            import(&db, &file, without_status).await?;
        }
        SubscribersCommand::Unsubscribe { email } => {
            let email = SubscriberEmail::parse(&email).map_err(anyhow::Error::msg)?;
            let lookup = email.clone();
            let done = db
                .run(move |conn| {
                    let Some(s) = find_subscriber_by_email(conn, lookup.as_str())? else {
                        return Ok(None);
                    };
                    unsubscribe_by_staff(conn, s.id, &EventContext::from_source("cli"))
                })
                .await?;
            if done.is_none() {
                bail!("{email} is not on the list");
            }
            println!("{email} unsubscribed; nothing more is sent to them");
        }
        SubscribersCommand::Erase { email } => {
            let email = SubscriberEmail::parse(&email).map_err(anyhow::Error::msg)?;
            let lookup = email.clone();
            let erased = db
                .run(move |conn| {
                    let Some(s) = find_subscriber_by_email(conn, lookup.as_str())? else {
                        return Ok(None);
                    };
                    erase_subscriber(conn, s.id, &EventContext::from_source("cli"))
                })
                .await?;
            if erased.is_none() {
                bail!("{email} is not on the list");
            }
            println!("{email} erased; only a hash is kept so an import cannot add it again");
        }
    }
    Ok(())
}

fn parse_status(status: Option<&str>) -> anyhow::Result<Option<SubscriberStatus>> {
    SubscriberStatus::parse_filter(status).map_err(anyhow::Error::msg)
}

/// Imports a CSV file (see [`list_csv::read_people`]) in transactions of 500, with a progress
/// bar, and reports bad lines by number.
async fn import(
    db: &Db,
    file: &std::path::Path,
    without_status: WithoutStatus,
) -> anyhow::Result<()> {
    let input = std::fs::File::open(file).with_context(|| format!("reading {}", file.display()))?;
    let read = list_csv::read_people(std::io::BufReader::new(input))
        .with_context(|| format!("reading {}", file.display()))?;
    let source = file
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let bar = ProgressBar::new(read.people.len() as u64);
    let total = import_in_batches(db, &read.people, &without_status, &source, |report| {
        bar.inc((report.imported + report.existing + report.suppressed) as u64)
    })
    .await?;
    bar.finish_and_clear();
    for problem in read.invalid.iter().take(20) {
        eprintln!("skipped {problem}");
    }
    if read.invalid.len() > 20 {
        eprintln!("… and {} more bad lines", read.invalid.len() - 20);
    }
    println!(
        "imported {}, already on the list {}, erased earlier (not re-added) {}, invalid {}",
        total.imported,
        total.existing,
        total.suppressed,
        read.invalid.len()
    );
    if total.asked_to_confirm > 0 {
        println!(
            "{} of them were added pending: each gets a mail asking to confirm (people without \
             a status are added so unless --confirmed --consent \"…\" says how they agreed)",
            total.asked_to_confirm
        );
    }
    Ok(())
}
