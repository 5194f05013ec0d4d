//! `newsletter digest create|preview|test|send|schedule|pause|resume|cancel|status|list`. The sending
//! itself is done by a running `serve` or `worker`; `send --wait` watches it.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};

use super::{DigestCommand, open_db};
use crate::configuration::Settings;
use crate::db::Db;
use crate::db::digests::{
    DigestProgress, NewDigest, ScheduleOutcome, SendStart, Transition, cancel_digest,
    create_digest, digest_progress, list_digests, pause_digest, queue_digest, resume_digest,
    schedule_digest,
};
use crate::digests::{PreviewFormat, parse_digest, parse_schedule_time, preview, send_test};
use crate::domain::DigestStatus;
use crate::startup::build_parts;

/// How long `digest send --wait` sees no progress before it says no worker seems to run.
const STALL_WARNING: Duration = Duration::from_secs(30);

pub async fn digest(settings: &Settings, command: DigestCommand) -> anyhow::Result<()> {
    match command {
        DigestCommand::Create {
            subject,
            intro,
            intro_file,
            article_ids,
            since,
            no_archive,
        } => {
            let db = open_db(settings)?;
            let intro = match intro_file {
                Some(path) => std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?,
                None => intro,
            };
            let choice = parse_digest(&subject, article_ids, since.as_deref())
                .map_err(anyhow::Error::msg)?;
            let new = NewDigest {
                subject: subject.trim().to_string(),
                intro,
                choice,
                archive: !no_archive,
            };
            let (digest, articles) = db.run(move |conn| Ok(create_digest(conn, &new))).await??;
            println!(
                "digest {} created (draft) with {} article(s):",
                digest.id,
                articles.len()
            );
            for a in articles {
                println!("  - {}", a.title);
            }
            println!(
                "preview: newsletter digest preview {0}\nsend:    newsletter digest send {0} --wait",
                digest.id
            );
        }
        DigestCommand::Preview { id, format } => {
            let parts = build_parts(settings)?;
            let format = if format == "html" {
                PreviewFormat::Html
            } else {
                PreviewFormat::Text
            };
            let rendered = preview(&parts.db, &parts.composer, id, format).await?;
            if let Some(why) = settings.site.not_ready_for_digests() {
                eprintln!("warning: this digest cannot be sent yet: {why}");
            }
            std::io::stdout().write_all(rendered.as_bytes())?;
        }
        DigestCommand::Test { id, email } => {
            let parts = build_parts(settings)?;
            send_test(&parts.db, &parts.composer, &parts.mailer, id, &email).await?;
            println!("test copy of digest {id} sent to {}", email.trim());
        }
        DigestCommand::Send { id, wait } => {
            if let Some(why) = settings.site.not_ready_for_digests() {
                bail!("digest {id} was not sent: {why}");
            }
            let db = open_db(settings)?;
            match db.run(move |conn| queue_digest(conn, id)).await? {
                SendStart::Queued(n) => println!("digest {id}: {n} mail(s) queued"),
                SendStart::AlreadyStarted => {
                    println!("digest {id} was sent already; nothing more was queued")
                }
                SendStart::NotFound => bail!("digest {id} does not exist"),
            }
            if wait {
                wait_for_digest(&db, id).await?;
            }
        }
        DigestCommand::Schedule { id, at } => {
            let zone = settings.site.tz();
            let at =
                parse_schedule_time(&at, zone, crate::db::now()).map_err(anyhow::Error::msg)?;
            if let Some(why) = settings.site.not_ready_for_digests() {
                bail!("digest {id} was not scheduled: {why}");
            }
            let db = open_db(settings)?;
            match db.run(move |conn| schedule_digest(conn, id, at)).await? {
                ScheduleOutcome::Scheduled => println!(
                    "digest {id} scheduled for {} ({})\nthe running `newsletter serve` or `newsletter worker` starts it then",
                    crate::db::staff_time(at),
                    local_time(at, zone)
                ),
                ScheduleOutcome::NotFrom(status) => bail!(
                    "digest {id} is {status}: only a draft, a scheduled digest or one that missed its time can be scheduled"
                ),
                ScheduleOutcome::NotFound => bail!("digest {id} does not exist"),
            }
        }
        DigestCommand::Pause { id } => {
            let db = open_db(settings)?;
            let done = db
                .run(move |conn| pause_digest(conn, id, "paused from the command line"))
                .await?;
            say(
                id,
                done,
                "paused: the mail in flight finishes, nothing more goes out",
                "only a sending digest can be paused",
            )?;
            println!("resume with: newsletter digest resume {id}");
        }
        DigestCommand::Resume { id } => {
            let db = open_db(settings)?;
            let done = db.run(move |conn| resume_digest(conn, id)).await?;
            say(
                id,
                done,
                "sending again from where it stopped",
                "only a paused digest can be resumed",
            )?;
        }
        DigestCommand::Cancel { id } => {
            let db = open_db(settings)?;
            let done = db
                .run(move |conn| cancel_digest(conn, id, "cancelled from the command line"))
                .await?;
            say(
                id,
                done,
                "cancelled: the mail in flight finishes, the rest is skipped",
                "only a sending, paused or scheduled digest can be cancelled",
            )?;
        }
        DigestCommand::Status { id } => {
            let db = open_db(settings)?;
            let p = progress(&db, id).await?;
            println!(
                "digest {}: {} ({})\nrecipients {}  queued {}  sent {}  failed {}  skipped {}\nstarted {}  finished {}",
                p.id,
                p.subject,
                p.status,
                p.recipients,
                p.queued,
                p.sent,
                p.failed,
                p.skipped,
                when(p.started_at),
                when(p.finished_at),
            );
            if p.failed > 0 {
                let causes: Vec<String> = p
                    .failures
                    .iter()
                    .filter(|(_, n)| **n > 0)
                    .map(|(cause, n)| format!("{cause} {n}"))
                    .collect();
                println!("failed by cause: {}", causes.join(", "));
            }
            if let (Some(at), Some(DigestStatus::Scheduled)) =
                (p.scheduled_at, DigestStatus::parse(&p.status))
            {
                println!(
                    "scheduled for {} ({})",
                    crate::db::staff_time(at),
                    local_time(at, settings.site.tz())
                );
            }
            if let Some(reason) = p.status_reason {
                println!("{reason}");
            }
        }
        DigestCommand::List => {
            let db = open_db(settings)?;
            for d in db.run(|conn| Ok(list_digests(conn)?)).await? {
                println!(
                    "{:>6}  {:<9} {:>8} recipients  {}",
                    d.id, d.status, d.recipients, d.subject
                );
            }
        }
    }
    Ok(())
}

/// Prints what a pause, resume or cancel did; an impossible one is an error.
fn say(id: i64, transition: Transition, done: &str, allowed: &str) -> anyhow::Result<()> {
    match transition {
        Transition::Done(_) => println!("digest {id} {done}"),
        Transition::Already(status) => println!("digest {id} is {status} already"),
        Transition::NotFrom(status) => bail!("digest {id} is {status}: {allowed}"),
        Transition::NotFound => bail!("digest {id} does not exist"),
    }
    Ok(())
}

/// A UTC time as the clinic's clock shows it: `2026-12-07 09:00 Europe/Berlin`.
fn local_time(at: chrono::NaiveDateTime, zone: chrono_tz::Tz) -> String {
    crate::configuration::on_clock(at, zone)
        .format("%Y-%m-%d %H:%M %Z")
        .to_string()
}

/// A time as staff read it: to the second, saying it is UTC; `-` for none yet.
fn when(at: Option<chrono::NaiveDateTime>) -> String {
    at.map(crate::db::staff_time).unwrap_or_else(|| "-".into())
}

async fn progress(db: &Db, id: i64) -> anyhow::Result<DigestProgress> {
    db.run(move |conn| Ok(digest_progress(conn, id)?))
        .await?
        .with_context(|| format!("digest {id} does not exist"))
}

/// A progress bar until the digest is `sent`; the sending is done by `serve` or `worker`.
/// A digest that pauses itself or is cancelled ends the wait with its reason.
async fn wait_for_digest(db: &Db, id: i64) -> anyhow::Result<()> {
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} {msg}")
            .context("progress bar template")?,
    );
    let mut last_done = 0;
    let mut last_change = Instant::now();
    loop {
        let p = progress(db, id).await?;
        let done = (p.sent + p.failed + p.skipped) as u64;
        bar.set_length(p.recipients as u64);
        bar.set_position(done);
        bar.set_message(format!(
            "sent {} failed {} skipped {}",
            p.sent, p.failed, p.skipped
        ));
        match DigestStatus::parse(&p.status) {
            Some(DigestStatus::Sent) => {
                bar.finish();
                println!(
                    "digest {id} done: {} sent, {} failed, {} skipped",
                    p.sent, p.failed, p.skipped
                );
                return Ok(());
            }
            Some(status @ (DigestStatus::Paused | DigestStatus::Cancelled)) => {
                bar.abandon();
                bail!(
                    "digest {id} is {status} after {} sent: {}",
                    p.sent,
                    p.status_reason.unwrap_or_default()
                );
            }
            _ => {}
        }
        if done != last_done {
            last_done = done;
            last_change = Instant::now();
        } else if last_change.elapsed() > STALL_WARNING {
            bar.println(
                "no progress for 30 s: is `newsletter serve` or `newsletter worker` running?",
            );
            last_change = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
