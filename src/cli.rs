//! The `newsletter` command line: one binary for the service, the worker and staff tasks.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::configuration::Settings;
use crate::startup::{Application, build_parts};

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
            let db = crate::db::Db::connect(&settings.database.url, 1)?;
            let applied = db.migrate()?;
            println!("{applied} migration(s) applied");
            Ok(())
        }
    }
}

async fn run_worker(settings: Settings) -> anyhow::Result<()> {
    let settings = std::sync::Arc::new(settings);
    let parts = build_parts(&settings)?;
    let wake = std::sync::Arc::new(tokio::sync::Notify::new());
    let worker =
        crate::delivery::Worker::new(parts.db, parts.mailer, parts.composer, settings, wake);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(worker.run_until_stopped(stop_rx));
    shutdown_signal().await;
    tracing::info!("stopping: finishing the mail already claimed");
    let _ = stop_tx.send(true);
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
