//! All diesel code lives below this module. One connection type covers both backends; the
//! backend is chosen from the URL scheme (never by trial, so a PostgreSQL outage is reported as
//! such), and every query runs on a blocking thread through [`Db::run`].

pub mod archive;
pub mod articles;
pub mod automations;
pub mod bounces;
pub mod dashboard;
pub mod digests;
pub mod events;
pub mod group_commit;
mod prepared;
pub mod queue;
pub mod schema;
pub mod service_keys;
pub mod staff;
pub mod staff_tokens;
pub mod subscribers;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::r2d2::{self, ManageConnection};
use diesel::sqlite::SqliteConnection;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use secrecy::{ExposeSecret, SecretString};
use tracing::Instrument;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// How long a SQLite writer waits for another writer before giving up.
const SQLITE_BUSY_TIMEOUT_MS: u32 = 10_000;

/// The commit that grows the WAL past this many pages checkpoints it, and the writers queued
/// behind it wait. Signup p99 over 20 s at 32 connections (two runs each): 250 pages 14.9 and
/// 15.5 ms; 500: 15.2 and 15.1; 1,000 (SQLite's default): 17.7 and 17.8; 4,000: 32 and 29.
/// Checkpointing in the background instead never caught up and let the WAL grow without bound.
const SQLITE_CHECKPOINT_PAGES: u32 = 500;

#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

/// Runs `$body` with `$c` bound to the concrete backend connection, for the few statements
/// that need a backend's own SQL or a `RETURNING` clause.
#[macro_export]
macro_rules! on_backend {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::db::DbConnection::Postgres($c) => $body,
            $crate::db::DbConnection::Sqlite($c) => $body,
        }
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    pub fn from_url(url: &str) -> anyhow::Result<Backend> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else if url.starts_with("sqlite://") {
            Ok(Backend::Sqlite)
        } else {
            anyhow::bail!("database.url must start with sqlite:// or postgres://")
        }
    }
}

/// Opens connections of the backend named by the URL, with SQLite's pragmas (or PostgreSQL's
/// statement timeout) set on each.
pub struct ConnectionManager {
    backend: Backend,
    url: SecretString,
    statement_timeout: Duration,
}

/// The statement timeout of a [`Db`] opened without settings (tests, tools).
const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

impl ConnectionManager {
    fn sqlite_path(&self) -> &str {
        self.url.expose_secret().trim_start_matches("sqlite://")
    }
}

impl ManageConnection for ConnectionManager {
    type Connection = DbConnection;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<DbConnection, Self::Error> {
        match self.backend {
            Backend::Postgres => {
                let mut conn = PgConnection::establish(self.url.expose_secret())
                    .map_err(r2d2::Error::ConnectionError)?;
                conn.batch_execute(&format!(
                    "SET statement_timeout = {}",
                    self.statement_timeout.as_millis()
                ))
                .map_err(r2d2::Error::QueryError)?;
                Ok(DbConnection::Postgres(conn))
            }
            Backend::Sqlite => {
                let mut conn = SqliteConnection::establish(self.sqlite_path())
                    .map_err(r2d2::Error::ConnectionError)?;
                // busy_timeout first: switching to WAL itself needs the lock.
                conn.batch_execute(&format!(
                    "PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS};
                     PRAGMA journal_mode = WAL;
                     PRAGMA synchronous = NORMAL;
                     PRAGMA foreign_keys = ON;
                     PRAGMA wal_autocheckpoint = {SQLITE_CHECKPOINT_PAGES};"
                ))
                .map_err(r2d2::Error::QueryError)?;
                Ok(DbConnection::Sqlite(conn))
            }
        }
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), Self::Error> {
        conn.batch_execute("SELECT 1")
            .map_err(r2d2::Error::QueryError)
    }

    fn has_broken(&self, _conn: &mut DbConnection) -> bool {
        false
    }
}

pub type Pool = r2d2::Pool<ConnectionManager>;

/// The database handle shared by the HTTP handlers, the worker and the CLI.
#[derive(Clone)]
pub struct Db {
    pool: Pool,
    /// SQLite: the in-process writer queue of this database file (see [`write_tx`]).
    writer: Arc<Mutex<()>>,
    backend: Backend,
}

impl Db {
    /// Opens the pool the settings describe, without running migrations.
    pub fn open(settings: &crate::configuration::DatabaseSettings) -> anyhow::Result<Db> {
        Db::open_pool(
            &settings.url,
            settings.max_connections,
            Duration::from_secs(settings.statement_timeout_seconds),
        )
    }

    /// Opens a pool of `max_connections` with the default statement timeout.
    pub fn connect(url: &SecretString, max_connections: u32) -> anyhow::Result<Db> {
        Db::open_pool(url, max_connections, DEFAULT_STATEMENT_TIMEOUT)
    }

    /// Opens the pool (creating the SQLite file's folder when needed) without running migrations.
    fn open_pool(
        url: &SecretString,
        max_connections: u32,
        statement_timeout: Duration,
    ) -> anyhow::Result<Db> {
        let backend = Backend::from_url(url.expose_secret())?;
        let manager = ConnectionManager {
            backend,
            url: url.clone(),
            statement_timeout,
        };
        if backend == Backend::Sqlite {
            if let Some(dir) = Path::new(manager.sqlite_path()).parent() {
                if !dir.as_os_str().is_empty() {
                    std::fs::create_dir_all(dir).with_context(|| {
                        format!("creating the database folder {}", dir.display())
                    })?;
                }
            }
        }
        let writer = match backend {
            Backend::Sqlite => writer_of(manager.sqlite_path()),
            Backend::Postgres => Arc::default(),
        };
        let pool = r2d2::Pool::builder()
            .max_size(max_connections)
            // No idle minimum: r2d2 would keep opening a spare connection in the background,
            // and a process exiting during that TLS handshake (a CLI command on PostgreSQL)
            // crashes in libpq's OpenSSL teardown.
            .min_idle(Some(0))
            .connection_timeout(Duration::from_secs(10))
            .build(manager)
            .context("connecting to the database")?;
        Ok(Db {
            pool,
            backend,
            writer,
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Applies the pending migrations of this backend; returns how many ran. A migration may
    /// rebuild an index of a large table, so it runs without the statement timeout.
    pub fn migrate(&self) -> anyhow::Result<usize> {
        let mut conn = self.pool.get().context("connecting to the database")?;
        let timeout = match &mut *conn {
            DbConnection::Postgres(c) => {
                let timeout: String = diesel::select(diesel::dsl::sql::<diesel::sql_types::Text>(
                    "current_setting('statement_timeout')",
                ))
                .get_result(c)?;
                c.batch_execute("SET statement_timeout = 0")?;
                Some(timeout)
            }
            DbConnection::Sqlite(_) => None,
        };
        let applied = on_backend!(&mut *conn, |c| match c
            .run_pending_migrations(migrations_of(self.backend))
        {
            Ok(done) => Ok(done.len()),
            Err(e) => Err(anyhow::anyhow!("running database migrations: {e}")),
        })?;
        if let (Some(timeout), DbConnection::Postgres(c)) = (timeout, &mut *conn) {
            c.batch_execute(&format!("SET statement_timeout = '{timeout}'"))?;
        }
        Ok(applied)
    }

    /// On PostgreSQL, lifts the statement timeout for the rest of the current transaction:
    /// for the few bulk statements whose time grows with the list.
    pub fn without_statement_timeout(conn: &mut DbConnection) -> QueryResult<()> {
        match conn {
            DbConnection::Postgres(c) => c.batch_execute("SET LOCAL statement_timeout = 0"),
            DbConnection::Sqlite(_) => Ok(()),
        }
    }

    /// A pooled connection for blocking code (CLI, tests). Async code uses [`Db::run`].
    pub fn get(&self) -> anyhow::Result<r2d2::PooledConnection<ConnectionManager>> {
        self.pool.get().context("no database connection available")
    }

    /// Runs blocking diesel work on the blocking pool, inside the caller's tracing span.
    pub async fn run<T, F>(&self, work: F) -> anyhow::Result<T>
    where
        F: FnOnce(&mut DbConnection) -> anyhow::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let pool = self.pool.clone();
        let writer = self.writer.clone();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            let mut conn = pool.get().context("no database connection available")?;
            let _queue = WriterScope::enter(writer);
            work(&mut conn)
        })
        .instrument(tracing::Span::current())
        .await
        .context("database task panicked")?
    }
}

fn migrations_of(backend: Backend) -> EmbeddedMigrations {
    match backend {
        Backend::Postgres => POSTGRES_MIGRATIONS,
        Backend::Sqlite => SQLITE_MIGRATIONS,
    }
}

thread_local! {
    /// The writer queue of the database whose work this blocking thread is running
    /// ([`Db::run`] sets it); other callers of [`write_tx`] share one process-wide queue.
    static CURRENT_WRITER: RefCell<Option<Arc<Mutex<()>>>> = const { RefCell::new(None) };
}

/// Sets this thread's writer queue until dropped (also when the work panics).
struct WriterScope;

impl WriterScope {
    fn enter(writer: Arc<Mutex<()>>) -> WriterScope {
        CURRENT_WRITER.with(|current| current.replace(Some(writer)));
        WriterScope
    }
}

impl Drop for WriterScope {
    fn drop(&mut self) {
        CURRENT_WRITER.with(|current| current.replace(None));
    }
}

/// One writer queue per database (URL) in this process, shared by every [`Db`] opened on it,
/// so that a writer stuck on one file (a lock held by another process) holds up only that file.
fn writer_of(url: &str) -> Arc<Mutex<()>> {
    static WRITERS: Mutex<BTreeMap<String, Arc<Mutex<()>>>> = Mutex::new(BTreeMap::new());
    let mut writers = WRITERS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    writers.entry(url.to_string()).or_default().clone()
}

/// A write transaction. On SQLite it starts with `BEGIN IMMEDIATE`, so it takes the write lock
/// up front and waits `busy_timeout` for it, instead of failing when a read turns into a write.
///
/// SQLite has one writer at a time. Within this process, writers of one database file queue on
/// a mutex and are handed the lock as soon as it is free; left to SQLite's busy handler they would sleep in steps of up
/// to 100 ms, which showed as a signup p99 of ~480 ms under load. Other processes (the CLI)
/// still wait through `busy_timeout`.
pub fn write_tx<T>(
    conn: &mut DbConnection,
    work: impl FnOnce(&mut DbConnection) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    write_tx_with(conn, Commit::Durable, work)
}

/// How a write transaction commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    /// Only once the commit is on disk.
    Durable,
    /// On PostgreSQL without waiting for the WAL to reach the disk (`synchronous_commit = off`
    /// for this transaction): a crash of PostgreSQL itself can lose the last fraction of a
    /// second of such transactions, a crash of ours loses nothing. For writes whose loss only
    /// repeats work. (SQLite commits without waiting for the disk anyway: WAL with
    /// `synchronous = NORMAL`.)
    Relaxed,
}

/// [`write_tx`] with a choice of [`Commit`].
pub fn write_tx_with<T>(
    conn: &mut DbConnection,
    commit: Commit,
    work: impl FnOnce(&mut DbConnection) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    static ANY_FILE: Mutex<()> = Mutex::new(());
    let this_file = CURRENT_WRITER.with(|current| current.borrow().clone());
    let _writer = match conn {
        DbConnection::Sqlite(c) => {
            let writer = this_file
                .as_deref()
                .unwrap_or(&ANY_FILE)
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")
                .context("starting a transaction")?;
            Some(writer)
        }
        DbConnection::Postgres(c) => {
            // One round trip either way.
            let begin = match commit {
                Commit::Durable => "BEGIN",
                Commit::Relaxed => "BEGIN; SET LOCAL synchronous_commit = off",
            };
            AnsiTransactionManager::begin_transaction_sql(c, begin)
                .context("starting a transaction")?;
            None
        }
    };
    let outcome = work(conn);
    let end = match (&outcome, &mut *conn) {
        (Ok(_), DbConnection::Sqlite(c)) => AnsiTransactionManager::commit_transaction(c),
        (Ok(_), DbConnection::Postgres(c)) => AnsiTransactionManager::commit_transaction(c),
        (Err(_), DbConnection::Sqlite(c)) => AnsiTransactionManager::rollback_transaction(c),
        (Err(_), DbConnection::Postgres(c)) => AnsiTransactionManager::rollback_transaction(c),
    };
    match outcome {
        Ok(value) => {
            end.context("committing a transaction")?;
            Ok(value)
        }
        Err(e) => Err(e),
    }
}

/// The database could not be reached or stayed locked: worth retrying in a moment, unlike a
/// failed statement.
#[derive(Debug, thiserror::Error)]
#[error("the database is unavailable: {0}")]
pub struct Unavailable(pub String);

/// Whether `error` means the database is out of reach for now (a lock held past the busy
/// timeout, no pooled connection, a closed connection) rather than that a statement failed.
pub fn is_unavailable(error: &anyhow::Error) -> bool {
    use diesel::result::{DatabaseErrorKind, Error};
    error.chain().any(|cause| {
        if cause.is::<Unavailable>() || cause.is::<r2d2::PoolError>() {
            return true;
        }
        match cause.downcast_ref::<Error>() {
            Some(Error::DatabaseError(DatabaseErrorKind::ClosedConnection, _)) => true,
            Some(Error::DatabaseError(_, info)) => {
                let message = info.message();
                message.contains("database is locked")
                    || message.contains("database table is locked")
                    || message.contains("statement timeout")
            }
            _ => false,
        }
    })
}

/// The current time in UTC, as stored in every timestamp column.
pub fn now() -> chrono::NaiveDateTime {
    chrono::Utc::now().naive_utc()
}

/// A stored time as staff read it, on the pages and the command line: to the second, saying it
/// is UTC.
pub fn staff_time(at: chrono::NaiveDateTime) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}
