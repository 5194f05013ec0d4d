//! The staff commands: tokens, articles, digests, subscribers. They work on the database
//! directly, so they run beside a live `serve`; the running worker does the sending.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};

use super::{ArticlesCommand, DigestCommand, SubscribersCommand, TokenCommand};
use crate::configuration::Settings;
use crate::db::Db;
use crate::db::articles::{insert_article, list_articles};
use crate::db::digests::{SendStart, create_digest, digest_progress, list_digests, queue_digest};
use crate::db::events::EventContext;
use crate::db::staff_tokens::{create_staff_token, list_staff_tokens, revoke_staff_token};
use crate::db::subscribers::{
    erase_subscriber, find_subscriber_by_email, import_subscribers, list_subscribers,
    subscribers_after,
};
use crate::digests::{PreviewFormat, parse_article, parse_digest, preview, send_test};
use crate::domain::{SubscriberEmail, SubscriberName, SubscriberStatus};
use crate::feeds::import_feed;
use crate::startup::build_parts;

/// How long `digest send --wait` sees no progress before it says no worker seems to run.
const STALL_WARNING: Duration = Duration::from_secs(30);

fn open_db(settings: &Settings) -> anyhow::Result<Db> {
    let db = Db::connect(&settings.database.url, 2)?;
    db.migrate()?;
    Ok(db)
}

fn cli_context() -> EventContext {
    EventContext {
        source: "cli".into(),
        ..EventContext::default()
    }
}

pub async fn token(settings: &Settings, command: TokenCommand) -> anyhow::Result<()> {
    let db = open_db(settings)?;
    match command {
        TokenCommand::Create { name } => {
            let token = db.run(move |conn| create_staff_token(conn, &name)).await?;
            eprintln!(
                "New staff token (shown only now; send it as `Authorization: Bearer <token>`):"
            );
            println!("{}", token.as_str());
        }
        TokenCommand::Revoke { name } => {
            let lookup = name.clone();
            if !db
                .run(move |conn| Ok(revoke_staff_token(conn, &lookup)?))
                .await?
            {
                bail!("no active token named {name:?}");
            }
            println!("token {name:?} revoked");
        }
        TokenCommand::List => {
            let tokens = db.run(|conn| Ok(list_staff_tokens(conn)?)).await?;
            println!("{:<24} {:<20} {:<20} STATE", "NAME", "CREATED", "LAST USED");
            for t in tokens {
                let used = t
                    .last_used_at
                    .map(|d| d.format("%Y-%m-%d %H:%M").to_string())
                    .unwrap_or("never".into());
                let state = if t.revoked_at.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                println!(
                    "{:<24} {:<20} {:<20} {state}",
                    t.name,
                    t.created_at.format("%Y-%m-%d %H:%M"),
                    used
                );
            }
        }
    }
    Ok(())
}

pub async fn articles(settings: &Settings, command: ArticlesCommand) -> anyhow::Result<()> {
    let db = open_db(settings)?;
    match command {
        ArticlesCommand::Add {
            title,
            url,
            summary,
            published_at,
        } => {
            let article = parse_article(&title, &url, &summary, published_at.as_deref())
                .map_err(anyhow::Error::msg)?;
            let stored = db.run(move |conn| insert_article(conn, &article)).await?;
            let stored = stored.context("an article with this url is already there")?;
            println!("article {} added: {}", stored.id, stored.title);
        }
        ArticlesCommand::ImportFeed { source } => {
            let spinner = ProgressBar::new_spinner().with_message(format!("importing {source}"));
            spinner.enable_steady_tick(Duration::from_millis(120));
            let outcome = import_feed(&db, &source).await;
            spinner.finish_and_clear();
            let (imported, skipped) = outcome?;
            println!("imported {imported}, skipped {skipped} already known");
        }
        ArticlesCommand::List { page } => {
            let list = db
                .run(move |conn| Ok(list_articles(conn, page.max(1), 50)?))
                .await?;
            for a in list {
                println!(
                    "{:>6}  {}  {}\n        {}",
                    a.id,
                    a.published_at.format("%Y-%m-%d"),
                    a.title,
                    a.url
                );
            }
        }
    }
    Ok(())
}

pub async fn digest(settings: &Settings, command: DigestCommand) -> anyhow::Result<()> {
    match command {
        DigestCommand::Create {
            subject,
            intro,
            intro_file,
            article_ids,
            since,
        } => {
            let db = open_db(settings)?;
            let intro = match intro_file {
                Some(path) => std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?,
                None => intro,
            };
            let choice = parse_digest(&subject, article_ids, since.as_deref())
                .map_err(anyhow::Error::msg)?;
            let subject = subject.trim().to_string();
            let (digest, articles) = db
                .run(move |conn| Ok(create_digest(conn, &subject, &intro, &choice)))
                .await??;
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
            std::io::stdout().write_all(rendered.as_bytes())?;
        }
        DigestCommand::Test { id, email } => {
            let parts = build_parts(settings)?;
            send_test(&parts.db, &parts.composer, &parts.mailer, id, &email).await?;
            println!("test copy of digest {id} sent to {}", email.trim());
        }
        DigestCommand::Send { id, wait } => {
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
        DigestCommand::Status { id } => {
            let db = open_db(settings)?;
            let p = db
                .run(move |conn| Ok(digest_progress(conn, id)?))
                .await?
                .with_context(|| format!("digest {id} does not exist"))?;
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
                p.started_at.map(|t| t.to_string()).unwrap_or("-".into()),
                p.finished_at.map(|t| t.to_string()).unwrap_or("-".into()),
            );
        }
        DigestCommand::List => {
            let db = open_db(settings)?;
            for d in db.run(|conn| Ok(list_digests(conn)?)).await? {
                println!(
                    "{:>6}  {:<8} {:>8} recipients  {}",
                    d.id, d.status, d.recipients, d.subject
                );
            }
        }
    }
    Ok(())
}

/// A progress bar until the digest is `sent`; the sending is done by `serve` or `worker`.
async fn wait_for_digest(db: &Db, id: i64) -> anyhow::Result<()> {
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} {msg}")
            .context("progress bar template")?,
    );
    let mut last_done = 0;
    let mut last_change = Instant::now();
    loop {
        let p = db
            .run(move |conn| Ok(digest_progress(conn, id)?))
            .await?
            .context("the digest disappeared")?;
        let done = (p.sent + p.failed + p.skipped) as u64;
        bar.set_length(p.recipients as u64);
        bar.set_position(done);
        bar.set_message(format!(
            "sent {} failed {} skipped {}",
            p.sent, p.failed, p.skipped
        ));
        if p.status == "sent" {
            bar.finish();
            println!(
                "digest {id} done: {} sent, {} failed, {} skipped",
                p.sent, p.failed, p.skipped
            );
            return Ok(());
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

fn parse_status(status: Option<&str>) -> anyhow::Result<Option<SubscriberStatus>> {
    SubscriberStatus::parse_filter(status).map_err(anyhow::Error::msg)
}

pub async fn subscribers(settings: &Settings, command: SubscribersCommand) -> anyhow::Result<()> {
    let db = open_db(settings)?;
    match command {
        SubscribersCommand::List { status, page } => {
            let status = parse_status(status.as_deref())?;
            let (rows, total) = db
                .run(move |conn| Ok(list_subscribers(conn, status, page.max(1), 50)?))
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
            csv.write_record([
                "id",
                "email",
                "name",
                "status",
                "created_at",
                "confirmed_at",
                "unsubscribed_at",
            ])?;
            let mut after = 0;
            let mut count = 0;
            loop {
                let batch = db
                    .run(move |conn| Ok(subscribers_after(conn, status, after, 1000)?))
                    .await?;
                let Some(last) = batch.last() else { break };
                after = last.id;
                for s in &batch {
                    let time = |t: Option<chrono::NaiveDateTime>| {
                        t.map(|t| t.and_utc().to_rfc3339()).unwrap_or_default()
                    };
                    csv.write_record([
                        s.id.to_string(),
                        s.email.clone(),
                        s.name.clone().unwrap_or_default(),
                        s.status.clone(),
                        s.created_at.and_utc().to_rfc3339(),
                        time(s.confirmed_at),
                        time(s.unsubscribed_at),
                    ])?;
                }
                count += batch.len();
            }
            csv.flush()?;
            eprintln!("{count} subscriber(s) exported");
        }
        SubscribersCommand::Import { file } => import(&db, &file).await?,
        SubscribersCommand::Erase { email } => {
            let email = SubscriberEmail::parse(&email).map_err(anyhow::Error::msg)?;
            let lookup = email.clone();
            let erased = db
                .run(move |conn| {
                    let Some(s) = find_subscriber_by_email(conn, lookup.as_str())? else {
                        return Ok(None);
                    };
                    erase_subscriber(conn, s.id, &cli_context())
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

/// Reads a CSV with an `email` column (and optionally `name`), reporting bad lines by number.
async fn import(db: &Db, file: &std::path::Path) -> anyhow::Result<()> {
    let mut reader =
        csv::Reader::from_path(file).with_context(|| format!("reading {}", file.display()))?;
    let headers = reader.headers()?.clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(name))
    };
    let email_column =
        column("email").context("the CSV needs a header row with an `email` column")?;
    let name_column = column("name");
    let mut people = Vec::new();
    let mut invalid = Vec::new();
    for (index, record) in reader.records().enumerate() {
        let line = index + 2;
        let record = record.with_context(|| format!("line {line}"))?;
        let email = SubscriberEmail::parse(record.get(email_column).unwrap_or_default());
        let name = SubscriberName::parse(name_column.and_then(|c| record.get(c)));
        match (email, name) {
            (Ok(email), Ok(name)) => people.push((email, name)),
            (Err(e), _) | (_, Err(e)) => invalid.push(format!("line {line}: {e}")),
        }
    }
    let bar = ProgressBar::new(people.len() as u64);
    let mut total = crate::db::subscribers::ImportReport::default();
    for chunk in people.chunks(500) {
        let chunk = chunk.to_vec();
        let report = db
            .run(move |conn| {
                import_subscribers(
                    conn,
                    &chunk,
                    &EventContext {
                        source: "import".into(),
                        ..EventContext::default()
                    },
                )
            })
            .await?;
        total.imported += report.imported;
        total.existing += report.existing;
        total.suppressed += report.suppressed;
        bar.inc((report.imported + report.existing + report.suppressed) as u64);
    }
    bar.finish_and_clear();
    for problem in invalid.iter().take(20) {
        eprintln!("skipped {problem}");
    }
    println!(
        "imported {}, already on the list {}, erased earlier (not re-added) {}, invalid {}",
        total.imported,
        total.existing,
        total.suppressed,
        invalid.len()
    );
    Ok(())
}
