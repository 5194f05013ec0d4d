//! The `newsletter` command line: one binary for the service, the worker and staff tasks. Staff
//! commands work on the database directly, so they run beside a live `serve`; the running
//! worker does the sending.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::configuration::Settings;
use crate::db::Db;
use crate::startup::{Application, build_parts};

mod articles;
mod automations;
mod digests;
mod staff;
mod subscribers;
mod tokens;

#[derive(Debug, Parser)]
#[command(
    name = "newsletter",
    version,
    about = "Double opt-in signup, digests and a delivery queue over SMTP"
)]
pub struct Cli {
    /// Configuration file (default: config/default.toml when present, else built-in defaults)
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve HTTP and run the delivery worker (the default)
    Serve,
    /// Run only the delivery worker
    Worker,
    /// Apply pending database migrations and exit
    Migrate,
    /// Staff accounts for the pages under /admin
    #[command(subcommand)]
    Staff(StaffCommand),
    /// Staff API tokens
    #[command(subcommand)]
    Token(TokenCommand),
    /// Articles that digests are made of
    #[command(subcommand)]
    Articles(ArticlesCommand),
    /// Compose, preview and send digests
    #[command(subcommand)]
    Digest(DigestCommand),
    /// The list of subscribers
    #[command(subcommand)]
    Subscribers(SubscribersCommand),
    /// The templates of pages and mail
    #[command(subcommand)]
    Templates(TemplatesCommand),
    /// Digests that make themselves from the site's feed on a schedule
    #[command(subcommand)]
    Automation(AutomationCommand),
    /// Mail that comes back: bounces, complaints, unsubscribe requests
    #[command(subcommand)]
    Inbound(InboundCommand),
}

#[derive(Debug, Subcommand)]
pub enum InboundCommand {
    /// Read one message (a file, or - for standard input, as a mail server's pipe gives it)
    /// and act on it. Exit 0 when handled or ignored; 75 (try again later) when it could not
    /// be read or the database could not be reached
    Process {
        #[arg(default_value = "-")]
        file: String,
        /// The address the mail server delivered it to (Postfix: ${original_recipient}); its
        /// VERP tag names our delivery
        #[arg(long, value_name = "ADDRESS")]
        envelope_to: Option<String>,
    },
}

/// A failure the caller should retry (exit code 75, EX_TEMPFAIL): the message could not be
/// read or the database not reached.
#[derive(Debug, thiserror::Error)]
#[error("{0:#}")]
pub struct TryAgainLater(pub anyhow::Error);

#[derive(Debug, Subcommand)]
pub enum AutomationCommand {
    /// Poll a feed on a schedule and make a digest of its new items
    Add {
        /// The site's RSS or Atom feed
        #[arg(long)]
        feed: String,
        /// Crontab: minute hour day-of-month month day-of-week, in site.timezone
        /// ("0 9 * * MON": every Monday at 09:00)
        #[arg(long)]
        schedule: String,
        /// The digest's subject; {{ date }} is the run's date, {{ count }} its new articles
        #[arg(long)]
        subject: String,
        /// draft: make it and mail staff "ready for review"; send: send it
        #[arg(long, value_parser = ["draft", "send"])]
        mode: String,
        /// Who gets "ready for review" (default: every staff account)
        #[arg(long, value_delimiter = ',')]
        notify: Option<Vec<String>>,
    },
    /// List automations with their next and last runs
    List,
    /// Remove an automation (the digests it made stay)
    Remove { id: i64 },
    /// Run an automation now
    Run { id: i64 },
}

#[derive(Debug, Subcommand)]
pub enum TemplatesCommand {
    /// Write the built-in templates into DIR to start your own from (files already there are
    /// kept); then set templates.dir = DIR
    Export { dir: PathBuf },
    /// Check the templates of templates.dir as start-up does, without starting
    Check,
}

#[derive(Debug, Subcommand)]
pub enum StaffCommand {
    /// Add a staff member and print a one-time link (valid 24 hours) where they set a password
    Add {
        email: String,
        #[arg(long)]
        name: Option<String>,
        /// Read the password from standard input instead (scripts, tests); no link is printed.
        /// On an existing account this sets a new password.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List staff members
    List,
    /// Remove a staff member; their sessions end at once
    Remove { email: String },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it once (only its hash is stored)
    Create { name: String },
    /// Revoke a token by name
    Revoke { name: String },
    /// List tokens with when they were last used
    List,
}

#[derive(Debug, Subcommand)]
pub enum ArticlesCommand {
    /// Add one article
    Add {
        #[arg(long)]
        title: String,
        #[arg(long)]
        url: String,
        #[arg(long, default_value = "")]
        summary: String,
        /// 2026-11-23 or 2026-11-23T10:00:00Z (default: now)
        #[arg(long)]
        published_at: Option<String>,
    },
    /// Import the items of an RSS or Atom feed (URL or file), skipping known ones
    ImportFeed { source: String },
    /// List the newest articles
    List {
        #[arg(long, default_value_t = 1)]
        page: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum DigestCommand {
    /// Create a draft; without --article-ids or --since it takes the articles not yet in any
    /// digest that was sent
    Create {
        #[arg(long)]
        subject: String,
        /// Markdown
        #[arg(long, default_value = "")]
        intro: String,
        /// Read the Markdown intro from a file
        #[arg(long, conflicts_with = "intro")]
        intro_file: Option<PathBuf>,
        #[arg(long, value_delimiter = ',')]
        article_ids: Option<Vec<i64>>,
        #[arg(long)]
        since: Option<String>,
        /// Keep it out of the public archive (/archive, /archive.atom); its mail then has no
        /// "View in browser" link
        #[arg(long)]
        no_archive: bool,
    },
    /// Print the digest as a subscriber would get it
    Preview {
        id: i64,
        #[arg(long, value_parser = ["html", "text"], default_value = "text")]
        format: String,
    },
    /// Send one copy, marked [Test], to an address now
    Test {
        id: i64,
        #[arg(long)]
        email: String,
    },
    /// Queue the digest for every confirmed subscriber
    Send {
        id: i64,
        /// Show a progress bar until every mail is out
        #[arg(long)]
        wait: bool,
    },
    /// Send it later: the running `serve` or `worker` starts it at that time. One found more
    /// than delivery.schedule_grace_minutes late (the service was down) is marked missed and
    /// not sent. `cancel` takes a scheduled digest back
    Schedule {
        id: i64,
        /// 2026-12-07T09:00:00+01:00 (RFC 3339), or 2026-12-07 09:00 in site.timezone
        #[arg(long)]
        at: String,
    },
    /// Stop a send: the mail in flight finishes, nothing more goes out until `resume`
    Pause { id: i64 },
    /// Go on with a paused send from where it stopped (refusals about us are tried again)
    Resume { id: i64 },
    /// End a send for good: what is not yet sent is skipped
    Cancel { id: i64 },
    /// How far a send has come
    Status { id: i64 },
    /// List digests
    List,
}

#[derive(Debug, Subcommand)]
pub enum SubscribersCommand {
    /// List subscribers, newest first
    List {
        #[arg(long)]
        status: Option<String>,
        /// Only this address (in any letter case)
        #[arg(long)]
        email: Option<String>,
        #[arg(long, default_value_t = 1)]
        page: i64,
    },
    /// Write subscribers as CSV (to stdout, or --output)
    Export {
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Add people from a CSV file with an `email` column (and optional `name`, `status`,
    /// `created_at`, `confirmed_at`, `unsubscribed_at`, as `export` writes them). People with a
    /// status keep it; people without one are added pending and asked to confirm by mail,
    /// unless --confirmed --consent says how they agreed
    Import {
        file: PathBuf,
        /// Add people without a status as confirmed (needs --consent)
        #[arg(long, requires = "consent")]
        confirmed: bool,
        /// How they agreed, kept in the consent ledger (e.g. "ticked the box at the 2026 open day")
        #[arg(long, requires = "confirmed", value_name = "TEXT")]
        consent: Option<String>,
    },
    /// Unsubscribe a person (who asked by phone, say); nothing more is sent to them
    Unsubscribe { email: String },
    /// Erase a person's data, keeping only a hash so an import cannot re-add them
    Erase { email: String },
}

/// Runs the command line; the error's whole cause chain is printed by `main`.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::load(cli.config.as_deref())?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            Application::build(settings, true)?
                .run_until_stopped()
                .await
        }
        Command::Worker => run_worker(settings).await,
        Command::Migrate => {
            let db = Db::open(&crate::configuration::DatabaseSettings {
                max_connections: 1,
                ..settings.database.clone()
            })?;
            let applied = db.migrate()?;
            println!("{applied} migration(s) applied");
            Ok(())
        }
        Command::Staff(command) => staff::staff(&settings, command).await,
        Command::Token(command) => tokens::token(&settings, command).await,
        Command::Articles(command) => articles::articles(&settings, command).await,
        Command::Digest(command) => digests::digest(&settings, command).await,
        Command::Subscribers(command) => subscribers::subscribers(&settings, command).await,
        Command::Automation(command) => automations::automation(settings, command).await,
        Command::Inbound(InboundCommand::Process { file, envelope_to }) => {
            inbound_process(&settings, &file, envelope_to.as_deref()).await
        }
        Command::Templates(command) => templates(&settings, command),
    }
}

fn templates(settings: &Settings, command: TemplatesCommand) -> anyhow::Result<()> {
    match command {
        TemplatesCommand::Export { dir } => {
            let (written, kept) = crate::email::export_builtins(&dir)?;
            println!(
                "{written} template(s) written to {}{}",
                dir.display(),
                match kept {
                    0 => String::new(),
                    kept => format!(" ({kept} already there, kept as they were)"),
                }
            );
            println!(
                "edit them, then set templates.dir = \"{}\" (or NEWSLETTER__TEMPLATES__DIR) and restart; \
                 files you delete fall back to the built-ins",
                dir.display()
            );
            Ok(())
        }
        TemplatesCommand::Check => {
            crate::startup::load_templates(settings, None)?;
            println!(
                "the templates{} are good",
                settings
                    .templates
                    .dir()
                    .map(|d| format!(" of {}", d.display()))
                    .unwrap_or_default()
            );
            Ok(())
        }
    }
}

/// The database for a staff command, which runs beside a live `serve`.
fn open_db(settings: &Settings) -> anyhow::Result<Db> {
    let db = Db::open(&crate::configuration::DatabaseSettings {
        max_connections: 2,
        ..settings.database.clone()
    })?;
    db.migrate()?;
    Ok(db)
}

async fn inbound_process(
    settings: &Settings,
    file: &str,
    envelope_to: Option<&str>,
) -> anyhow::Result<()> {
    use anyhow::Context;
    use std::io::Read;
    let limit = crate::bounces::MAX_INBOUND_BYTES as u64;
    let mut raw = Vec::new();
    let read = match file {
        "-" => std::io::stdin().take(limit).read_to_end(&mut raw),
        path => std::fs::File::open(path).and_then(|f| f.take(limit).read_to_end(&mut raw)),
    };
    read.with_context(|| format!("reading the message from {file}"))
        .map_err(TryAgainLater)?;
    let handled = async {
        let db = open_db(settings)?;
        let verp = crate::startup::verp_of(&db, settings)?;
        crate::bounces::process(&db, settings, verp.as_ref(), &raw, envelope_to).await
    }
    .await
    .map_err(TryAgainLater)?;
    for h in handled {
        println!("{}: {} → {:?}", h.who, h.class, h.applied);
    }
    Ok(())
}

async fn run_worker(settings: Settings) -> anyhow::Result<()> {
    let parts = build_parts(&settings)?;
    let wake = std::sync::Arc::new(tokio::sync::Notify::new());
    let worker = crate::delivery::DbWorker::from_parts(
        &parts,
        &settings,
        wake.clone(),
        crate::delivery::DigestGate::default(),
        None,
    );
    let scheduler = crate::scheduler::Scheduler::new(&parts, std::sync::Arc::new(settings), wake);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let clock = tokio::spawn(scheduler.run_until_stopped(stop_rx.clone()));
    let running = tokio::spawn(worker.run_until_stopped(stop_rx));
    shutdown_signal().await;
    tracing::info!("stopping: finishing the mail already claimed");
    let _ = stop_tx.send(true);
    clock.await??;
    running.await?
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
