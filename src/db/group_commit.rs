//! Group commit: concurrent writes of the same kind share one transaction.
//!
//! Under a flood of signups each request used to take a blocking thread, a pooled connection
//! and (on SQLite) the writer lock for its own short transaction; the handoffs between 32 such
//! threads, not the SQL, were most of the time (perf: scheduler and futex wake-ups on top).
//! Here requests queue on a channel and a few committer tasks each take whatever is waiting,
//! up to a batch, and write it in one transaction. A lone request goes straight through, so
//! nothing waits for a batch to fill.
//!
//! Each item still succeeds or fails on its own: when a batch fails, it is rolled back and its
//! items are written again one transaction each, so only the bad one gets the error. What must
//! happen only once an item's write is committed (handing a signup's confirmation to the
//! worker) is the `committed` hook's, which sees each result after its transaction commits.

use std::sync::Arc;

use anyhow::Context;
use tokio::sync::{Mutex, mpsc, oneshot};
use tracing::Instrument;

use super::{Backend, Db, DbConnection, Unavailable, is_unavailable, write_tx};

/// Most items one transaction holds.
const MAX_BATCH: usize = 64;

/// Writes a batch inside the caller's transaction; one result per item, in order.
type Apply<T, R> = dyn Fn(&mut DbConnection, &[T]) -> anyhow::Result<Vec<R>> + Send + Sync;
/// Sees a result once the transaction that wrote it has committed.
type Committed<R> = fn(&mut R);
type Job<T, R> = (T, oneshot::Sender<anyhow::Result<R>>);

/// How a batch is written, and what follows its commit.
struct Writer<T, R> {
    apply: Box<Apply<T, R>>,
    committed: Committed<R>,
}

/// A queue of writes applied by `apply`, batched into shared transactions.
pub struct GroupCommit<T, R> {
    jobs: mpsc::Sender<Job<T, R>>,
}

impl<T, R> GroupCommit<T, R>
where
    T: Send + 'static,
    R: Send + 'static,
{
    /// Starts the committer tasks on the current tokio runtime. SQLite has one writer at a
    /// time, so it gets one committer; PostgreSQL gets two, which commit in parallel (in the
    /// signup benchmark two beat one by half again; four added nothing).
    pub fn start(
        db: Db,
        apply: impl Fn(&mut DbConnection, &[T]) -> anyhow::Result<Vec<R>> + Send + Sync + 'static,
    ) -> GroupCommit<T, R> {
        GroupCommit::start_with_hook(db, apply, |_| {})
    }

    /// As [`GroupCommit::start`], and `committed` sees each result once its transaction has
    /// committed, before the result goes back to its caller (who may be gone by then).
    pub fn start_with_hook(
        db: Db,
        apply: impl Fn(&mut DbConnection, &[T]) -> anyhow::Result<Vec<R>> + Send + Sync + 'static,
        committed: Committed<R>,
    ) -> GroupCommit<T, R> {
        let writer = Arc::new(Writer {
            apply: Box::new(apply),
            committed,
        });
        let (jobs, queue) = mpsc::channel::<Job<T, R>>(MAX_BATCH * 8);
        let queue = Arc::new(Mutex::new(queue));
        let committers = match db.backend() {
            Backend::Sqlite => 1,
            Backend::Postgres => 2,
        };
        for _ in 0..committers {
            let (db, queue, writer) = (db.clone(), queue.clone(), writer.clone());
            tokio::spawn(commit_batches(db, queue, writer).in_current_span());
        }
        GroupCommit { jobs }
    }

    /// Writes `item` (with whatever else is waiting) and returns what `apply` returned for it.
    pub async fn submit(&self, item: T) -> anyhow::Result<R> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send((item, reply))
            .await
            .map_err(|_| anyhow::anyhow!("the database writer has stopped"))?;
        answer
            .await
            .map_err(|_| anyhow::anyhow!("the database writer stopped before answering"))?
    }
}

async fn commit_batches<T, R>(
    db: Db,
    queue: Arc<Mutex<mpsc::Receiver<Job<T, R>>>>,
    writer: Arc<Writer<T, R>>,
) where
    T: Send + 'static,
    R: Send + 'static,
{
    loop {
        let mut batch = Vec::new();
        {
            let mut queue = queue.lock().await;
            if queue.recv_many(&mut batch, MAX_BATCH).await == 0 {
                return;
            }
        }
        let (items, replies): (Vec<T>, Vec<_>) = batch.into_iter().unzip();
        let count = items.len();
        let writer = writer.clone();
        match db
            .run(move |conn| Ok(apply_batch(conn, &items, &writer)))
            .await
        {
            Ok(results) => {
                for (reply, result) in replies.into_iter().zip(results) {
                    let _ = reply.send(result);
                }
            }
            Err(e) => {
                tracing::warn!(error = format!("{e:#}"), count, "a batch of writes failed");
                for reply in replies {
                    let _ = reply.send(Err(shared_error(&e)));
                }
            }
        }
    }
}

/// One error for every item of a batch. anyhow errors cannot be cloned, so each item gets the
/// message, marked [`Unavailable`] when the database was out of reach (callers answer 503).
fn shared_error(error: &anyhow::Error) -> anyhow::Error {
    let message = format!("{error:#}");
    if is_unavailable(error) {
        Unavailable(message).into()
    } else {
        anyhow::anyhow!(message)
    }
}

/// All items in one transaction; if an item fails, each in its own.
fn apply_batch<T, R>(
    conn: &mut DbConnection,
    items: &[T],
    writer: &Writer<T, R>,
) -> Vec<anyhow::Result<R>> {
    let apply = &writer.apply;
    let mut writing_failed = false;
    let together = write_tx(conn, |conn| {
        let results = apply(conn, items).and_then(|results| {
            anyhow::ensure!(
                results.len() == items.len(),
                "{} results for {} writes",
                results.len(),
                items.len()
            );
            Ok(results)
        });
        results.inspect_err(|_| writing_failed = true)
    });
    match together {
        Ok(results) => {
            return results
                .into_iter()
                .map(|mut result| {
                    (writer.committed)(&mut result);
                    Ok(result)
                })
                .collect();
        }
        Err(e) if items.len() == 1 => return vec![Err(e)],
        // The transaction itself could not start or commit (a lock held too long, the
        // database gone): trying each alone would only wait as long again, once per item.
        Err(e) if !writing_failed => return items.iter().map(|_| Err(shared_error(&e))).collect(),
        Err(e) => tracing::debug!(
            error = format!("{e:#}"),
            "a batch of writes failed; writing them one by one"
        ),
    }
    items
        .iter()
        .map(|item| {
            let mut result = write_tx(conn, |conn| apply(conn, std::slice::from_ref(item)))?
                .pop()
                .context("a write returned no result")?;
            (writer.committed)(&mut result);
            Ok(result)
        })
        .collect()
}
