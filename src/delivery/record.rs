//! The recorder writes outcomes in batches and only then gives back the senders' permits of
//! the window; the heartbeat renews the leases of what the worker holds.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::send::Done;
use super::{Messenger, Shared, Store, locked};
use crate::db::queue::{Finished, RecordOptions};

/// Outcomes written in one transaction at most.
const OUTCOME_BATCH: usize = 512;
/// The recorder waits up to this long for more outcomes before it writes a batch (or until half
/// the window waits on it). Writing what was there at once made a transaction per few mails.
const RECORD_LINGER: Duration = Duration::from_millis(20);

/// Writes outcomes until every sender is gone. A failed write (a locked or restarting
/// database) is retried, never dropped: a sent mail is not sent again once the database is
/// back, and meanwhile the senders wait, their permits held.
pub(super) async fn record_outcomes<S: Store, M: Messenger>(
    shared: Arc<Shared<S, M>>,
    mut done: mpsc::Receiver<Done>,
) {
    let mut batch = Vec::with_capacity(OUTCOME_BATCH);
    while done.recv_many(&mut batch, OUTCOME_BATCH).await > 0 {
        let deadline = tokio::time::Instant::now() + RECORD_LINGER;
        while batch.len() < (shared.window.size() / 2).clamp(1, OUTCOME_BATCH) {
            match tokio::time::timeout_at(deadline, done.recv()).await {
                Ok(Some(more)) => batch.push(more),
                _ => break,
            }
        }
        let (finished, permits): (Vec<_>, Vec<_>) =
            batch.drain(..).map(|d| (d.finished, d.permit)).unzip();
        let claims: Vec<i64> = finished.iter().map(|f| f.claim_id).collect();
        let options = options_for(&shared, &finished);
        let mut delay = Duration::from_millis(100);
        let seen = shared.gate.seen();
        let report = loop {
            match shared.store.record(finished.clone(), options.clone()).await {
                Ok(report) => break report,
                Err(e) => {
                    tracing::warn!(
                        error = format!("{e:#}"),
                        "could not record delivery outcomes; retrying"
                    );
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
            }
        };
        {
            let mut streaking = locked(&shared.streaking);
            for digest in &report.digests {
                shared.gate.refresh(digest.id, digest.status, seen);
                match digest.failure_streak {
                    0 => streaking.remove(&digest.id),
                    _ => streaking.insert(digest.id),
                };
            }
        }
        let maybe_done = digests_among(&finished, &locked(&shared.draining));
        if report.stale > 0 {
            tracing::warn!(
                stale = report.stale,
                "outcomes discarded: another worker had taken those deliveries over (this \
                 worker's lease ran out)"
            );
        }
        shared.forget_rows(claims);
        drop(permits);
        shared.finish(maybe_done).await;
    }
}

/// What to ask of the store with this batch: the digests read back now and then, and the
/// runs of failures its sent mail ends.
fn options_for<S, M>(shared: &Shared<S, M>, batch: &[Finished]) -> RecordOptions {
    let read_digests = {
        let mut read_at = locked(&shared.digests_read_at);
        let due = read_at.elapsed() >= super::READ_DIGESTS_EVERY;
        if due {
            *read_at = std::time::Instant::now();
        }
        due
    };
    RecordOptions {
        read_digests,
        end_runs_of: digests_among(batch, &locked(&shared.streaking)),
    }
}

/// The digests of this batch that are in `set`, each once, in ascending order.
fn digests_among(batch: &[Finished], set: &HashSet<i64>) -> Vec<i64> {
    let mut digests: Vec<i64> = batch
        .iter()
        .filter_map(|f| f.digest_id)
        .filter(|d| set.contains(d))
        .collect();
    digests.sort_unstable();
    digests.dedup();
    digests
}

/// Renews the leases of the claims this worker still holds, every third of a lease (saying
/// that the worker is alive, also when it holds nothing), until it is aborted.
pub(super) async fn renew_leases<S: Store, M: Messenger>(shared: Arc<Shared<S, M>>) {
    let every = (shared.policy.lease / 3).max(Duration::from_millis(100));
    loop {
        let claims: Vec<i64> = locked(&shared.live_claims).keys().copied().collect();
        if let Err(e) = shared.store.renew(claims).await {
            tracing::warn!(
                error = format!("{e:#}"),
                "could not renew the leases of held deliveries"
            );
        }
        tokio::time::sleep(every).await;
    }
}
