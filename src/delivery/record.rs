//! The recorder writes outcomes in batches (whatever arrived while the last batch was being
//! written) and only then gives back the senders' permits; the heartbeat renews the leases of
//! what the worker holds.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::send::Done;
use super::{Messenger, Shared, Store};

/// Outcomes written in one transaction at most.
const OUTCOME_BATCH: usize = 512;

/// Writes outcomes until every sender is gone. A failed write (a locked or restarting
/// database) is retried, never dropped: a sent mail is not sent again once the database is
/// back, and meanwhile the senders wait, their permits held.
pub(super) async fn record_outcomes<S: Store, M: Messenger>(
    shared: Arc<Shared<S, M>>,
    mut done: mpsc::Receiver<Done>,
) {
    let mut batch = Vec::with_capacity(OUTCOME_BATCH);
    while done.recv_many(&mut batch, OUTCOME_BATCH).await > 0 {
        let (finished, permits): (Vec<_>, Vec<_>) =
            batch.drain(..).map(|d| (d.finished, d.permit)).unzip();
        let claims: Vec<i64> = finished.iter().map(|f| f.claim_id).collect();
        let mut delay = Duration::from_millis(100);
        let report = loop {
            match shared.store.record(finished.clone()).await {
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
        for (digest_id, status) in report.digests {
            shared.gate.set(digest_id, status);
        }
        if report.stale > 0 {
            tracing::warn!(
                stale = report.stale,
                "outcomes discarded: another worker had taken those deliveries over (this \
                 worker's lease ran out)"
            );
        }
        shared.forget_rows(claims);
        drop(permits);
    }
}

/// Renews the leases of the claims this worker still holds, every third of a lease, until it
/// is aborted.
pub(super) async fn renew_leases<S: Store, M: Messenger>(shared: Arc<Shared<S, M>>) {
    let every = (shared.policy.lease / 3).max(Duration::from_millis(100));
    loop {
        tokio::time::sleep(every).await;
        let claims: Vec<i64> = shared
            .live_claims
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .keys()
            .copied()
            .collect();
        if claims.is_empty() {
            continue;
        }
        if let Err(e) = shared.store.renew(claims).await {
            tracing::warn!(
                error = format!("{e:#}"),
                "could not renew the leases of held deliveries"
            );
        }
    }
}
