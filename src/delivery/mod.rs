//! The delivery worker: claims due rows from the queue, renders and sends each mail over one
//! of `delivery.concurrency` mail sessions, and records outcomes. It runs inside `serve` and
//! alone as `worker`; on PostgreSQL any number of them share the queue. It depends on a small
//! [`Store`] and a small [`Messenger`], so it can be tested alone.
//!
//! The promises, and how they are kept:
//! - **A crashed worker's mail goes out again within seconds.** Leases are short
//!   (`lease_seconds`, 30 s) and a live worker renews the leases of what it holds every third
//!   of that, however slow the relay. When a worker dies its rows come back when the lease runs
//!   out, and the next claim (of any worker) takes them.
//! - **Few copies twice.** At most 2 × `concurrency` mails are between their hand-off to SMTP
//!   and their recorded outcome (a window: a sender takes a permit before it sends, and the
//!   recorder gives it back once the outcome is committed). A crash can send only those again.
//!   When the database cannot record, sending stops with the window full.
//! - **A worker holds little.** It claims what it will send in the next 50 ms or so (at least
//!   `concurrency`, at most `batch_size`), so a pause, a cancel or an unsubscribe catches
//!   everything but that, and the rows of a crashed worker are few.
//! - **A pause stops sending.** Before each message a sender checks the digest in the
//!   [`DigestGate`]; what it holds of a paused or cancelled digest goes back unsent.

mod gate;
mod handoff;
mod messenger;
mod record;
mod send;
mod store;
#[cfg(test)]
mod tests;
mod throttle;

pub use gate::DigestGate;
pub use handoff::{Handoff, Signed, signup_writer};
pub use messenger::{Messenger, Session};
pub use store::{Claimed, DbStore, Job, Store};

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::{Mutex, Notify, Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::configuration::{DeliverySettings, Settings};
use crate::email::Composer;

/// How much sending a worker holds claimed ahead of its senders.
const HOLD_AHEAD: Duration = Duration::from_millis(100);
/// How often a recorder reads back the digests it records for (to hear of a pause made by
/// another process); in between, outcomes are written without it.
const READ_DIGESTS_EVERY: Duration = Duration::from_millis(50);
/// At speed, the window holds what is sent in this time. Outcomes must be written in batches
/// to keep up (each transaction rewrites whole pages of SQLite's WAL; a transaction per few
/// mails cost a third of the throughput in the digest benchmark), and a batch needs a window
/// wider than what is sent while the previous one commits.
const WINDOW_TIME: Duration = Duration::from_millis(40);
/// The window never grows past this.
const MAX_WINDOW: usize = 1024;
/// How often a worker looks for rows whose lease ran out.
const RECLAIM_EVERY: Duration = Duration::from_secs(1);

/// The settings the worker runs by.
#[derive(Debug, Clone)]
pub struct DeliveryPolicy {
    pub concurrency: usize,
    pub rate_per_second: u32,
    pub max_attempts: i32,
    pub retry_base_seconds: u64,
    pub lease: Duration,
    pub poll_interval: Duration,
    pub batch_size: usize,
}

impl DeliveryPolicy {
    pub fn from_settings(delivery: &DeliverySettings) -> DeliveryPolicy {
        DeliveryPolicy {
            concurrency: delivery.concurrency,
            rate_per_second: delivery.rate_per_second,
            max_attempts: delivery.max_attempts,
            retry_base_seconds: delivery.retry_base_seconds,
            lease: Duration::from_secs(delivery.lease_seconds.max(1)),
            poll_interval: Duration::from_millis(delivery.poll_interval_ms.max(10)),
            batch_size: delivery.batch_size.max(1) as usize,
        }
    }

    /// Mails between hand-off to SMTP and a recorded outcome when sending slowly; at speed,
    /// what is sent in [`WINDOW_TIME`].
    pub fn min_window(&self) -> usize {
        2 * self.concurrency
    }
}

pub struct Worker<S, M> {
    store: S,
    messenger: M,
    composer: Arc<Composer>,
    policy: DeliveryPolicy,
    wake: Arc<Notify>,
    gate: DigestGate,
    metrics: Arc<crate::metrics::Metrics>,
}

/// The worker of the real service: the database as its store, the mailer as its messenger.
pub type DbWorker = Worker<DbStore, crate::email::Mailer>;

impl DbWorker {
    pub fn from_parts(
        parts: &crate::startup::Parts,
        settings: &Settings,
        wake: Arc<Notify>,
        gate: DigestGate,
        handoff: Option<Arc<Handoff>>,
    ) -> DbWorker {
        let store = DbStore::new(parts.db.clone(), parts.composer.clone(), settings);
        Worker::new(
            match handoff {
                Some(handoff) => store.with_handoff(handoff),
                None => store,
            },
            parts.mailer.clone(),
            parts.composer.clone(),
            DeliveryPolicy::from_settings(&settings.delivery),
            wake,
            gate,
        )
        .with_metrics(parts.metrics.clone())
    }
}

/// What the worker's tasks share.
struct Shared<S, M> {
    store: S,
    messenger: M,
    composer: Arc<Composer>,
    policy: DeliveryPolicy,
    gate: DigestGate,
    metrics: Arc<crate::metrics::Metrics>,
    /// Claim id → rows of it not yet recorded: what the heartbeat renews.
    live_claims: std::sync::Mutex<HashMap<i64, usize>>,
    /// Jobs taken by senders so far, for the pace of claims.
    handed: AtomicU64,
    /// A sender took a job: the claimer may top up.
    taken: Notify,
    limiter: Option<DefaultDirectRateLimiter>,
    /// The paces of receiving domains that asked us to slow down.
    throttle: throttle::Throttle,
    /// Cached per digest: rendered once per worker.
    digests: Mutex<HashMap<i64, Arc<tokio::sync::OnceCell<Arc<crate::email::PreparedMail>>>>>,
    /// Digests with nothing more to claim: after their outcomes are recorded, the recorder
    /// looks whether they are done.
    draining: std::sync::Mutex<std::collections::HashSet<i64>>,
    /// Digests in a run of sender-side failures: their next sent mail ends it.
    streaking: std::sync::Mutex<std::collections::HashSet<i64>>,
    /// When a recorder last read the digests back.
    digests_read_at: std::sync::Mutex<Instant>,
    window: Window,
}

/// Locks worker state held in a `std::sync::Mutex`. Nothing holding one of these locks can leave
/// the state half-changed, so a lock poisoned by a panicking task is taken as it is.
fn locked<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The permits of mails between hand-off to SMTP and a recorded outcome, sized to the pace.
struct Window {
    permits: Arc<Semaphore>,
    size: AtomicU64,
}

impl Window {
    fn new(size: usize) -> Window {
        Window {
            permits: Arc::new(Semaphore::new(size)),
            size: AtomicU64::new(size as u64),
        }
    }

    fn size(&self) -> usize {
        self.size.load(Ordering::Relaxed) as usize
    }

    /// Grows at once; shrinks by the permits that are free now (the rest as they come back).
    fn resize(&self, target: usize) {
        let size = self.size();
        if target > size {
            self.permits.add_permits(target - size);
            self.size.store(target as u64, Ordering::Relaxed);
        } else if target < size {
            let forgotten = self.permits.forget_permits(size - target);
            self.size
                .store((size - forgotten) as u64, Ordering::Relaxed);
        }
    }
}

impl<S: Store, M> Shared<S, M> {
    /// Looks whether these digests are done (once their last outcomes are committed) and
    /// passes what it learns to the gate.
    async fn finish(&self, digests: Vec<i64>) {
        if digests.is_empty() {
            return;
        }
        let seen = self.gate.seen();
        match self.store.finish(digests).await {
            Ok(statuses) => {
                let mut draining = locked(&self.draining);
                for (digest_id, status) in statuses {
                    if !status.is_sending() {
                        draining.remove(&digest_id);
                    }
                    self.gate.refresh(digest_id, status, seen);
                }
            }
            Err(e) => tracing::warn!(
                error = format!("{e:#}"),
                "could not look whether digests are done"
            ),
        }
    }
}

impl<S, M> Shared<S, M> {
    fn forget_rows(&self, claims: impl IntoIterator<Item = i64>) {
        let mut live = locked(&self.live_claims);
        for claim in claims {
            if let Some(left) = live.get_mut(&claim) {
                *left = left.saturating_sub(1);
                if *left == 0 {
                    live.remove(&claim);
                }
            }
        }
    }
}

impl<S: Store, M: Messenger> Worker<S, M> {
    pub fn new(
        store: S,
        messenger: M,
        composer: Arc<Composer>,
        policy: DeliveryPolicy,
        wake: Arc<Notify>,
        gate: DigestGate,
    ) -> Worker<S, M> {
        Worker {
            store,
            messenger,
            composer,
            policy,
            wake,
            gate,
            metrics: Arc::default(),
        }
    }

    /// Counts its attempts and their SMTP time in `metrics` (what `/metrics` shows).
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> Worker<S, M> {
        self.metrics = metrics;
        self
    }

    /// Sends until `stop` turns true: the mail in flight then finishes, what is held but not
    /// yet sent goes back to the queue. Dropping this future (a crash) leaves the held rows
    /// leased; their leases run out as nobody renews them.
    pub async fn run_until_stopped(self, mut stop: watch::Receiver<bool>) -> anyhow::Result<()> {
        let policy = self.policy.clone();
        tracing::info!(
            transport = %self.messenger.describe(),
            concurrency = policy.concurrency,
            "delivery worker started"
        );
        let buffer = policy.batch_size.max(policy.concurrency) * 2;
        let (job_tx, job_rx) = mpsc::channel::<Job>(buffer);
        let job_rx = Arc::new(Mutex::new(job_rx));
        let (done_tx, done_rx) = mpsc::channel::<send::Done>(MAX_WINDOW);
        let shared = Arc::new(Shared {
            store: self.store,
            messenger: self.messenger,
            composer: self.composer,
            gate: self.gate,
            metrics: self.metrics,
            live_claims: std::sync::Mutex::default(),
            handed: AtomicU64::new(0),
            taken: Notify::new(),
            limiter: rate_limiter(policy.rate_per_second, policy.concurrency),
            throttle: throttle::Throttle::new(policy.concurrency),
            digests: Mutex::default(),
            draining: std::sync::Mutex::default(),
            streaking: std::sync::Mutex::default(),
            digests_read_at: std::sync::Mutex::new(Instant::now()),
            window: Window::new(policy.min_window()),
            policy: policy.clone(),
        });

        // Every task lives in this set: if this future is dropped, they are all aborted.
        let mut tasks = JoinSet::new();
        let recorder = tasks
            .spawn(record::record_outcomes(shared.clone(), done_rx).in_current_span())
            .id();
        let heartbeat = tasks.spawn(record::renew_leases(shared.clone()).in_current_span());
        for _ in 0..policy.concurrency {
            tasks.spawn(
                send::send_jobs(
                    shared.clone(),
                    job_rx.clone(),
                    done_tx.clone(),
                    stop.clone(),
                )
                .in_current_span(),
            );
        }
        drop(done_tx);

        shared.store.open();
        let mut pace = Pace::new();
        let mut last_reclaim: Option<Instant> = None;
        while !*stop.borrow() {
            if last_reclaim.is_none_or(|at| at.elapsed() >= RECLAIM_EVERY) {
                last_reclaim = Some(Instant::now());
                if let Err(e) = shared.store.reclaim().await {
                    tracing::warn!(
                        error = format!("{e:#}"),
                        "could not take back expired leases"
                    );
                }
            }
            pace.update(shared.handed.load(Ordering::Relaxed));
            shared.window.resize(pace.window(&policy));
            let target = pace.target(&policy);
            let buffered = job_tx.max_capacity() - job_tx.capacity();
            // Topped up at half, so the senders never wait for a claim to commit, and a claim
            // is big enough to be worth its transaction.
            if buffered >= (target / 2).max(1) {
                tokio::select! {
                    _ = shared.taken.notified() => {}
                    _ = tokio::time::sleep(policy.poll_interval) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            let seen = shared.gate.seen();
            let claimed = match shared.store.claim(target - buffered).await {
                Ok(claimed) => claimed,
                Err(e) => {
                    tracing::warn!(
                        error = format!("{e:#}"),
                        "could not claim deliveries; trying again"
                    );
                    Claimed::default()
                }
            };
            for digest_id in &claimed.sending_digests {
                shared
                    .gate
                    .refresh(*digest_id, crate::domain::DigestStatus::Sending, seen);
            }
            if !claimed.drained_digests.is_empty() {
                locked(&shared.draining).extend(claimed.drained_digests.iter().copied());
                // Their last outcomes may all be recorded already.
                shared.finish(claimed.drained_digests).await;
            }
            if claimed.jobs.is_empty() {
                let idle = claimed
                    .look_again_in
                    .map_or(policy.poll_interval, |d| d.min(policy.poll_interval));
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(idle) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            tracing::debug!(count = claimed.jobs.len(), "claimed deliveries");
            hold(&shared, &job_tx, claimed.jobs).await?;
        }
        // Mail handed over and not yet claimed goes back too.
        hold(&shared, &job_tx, shared.store.close()).await?;
        // The senders hand back what is left in the buffer, then end; the recorder writes the
        // last outcomes and ends when the last sender has.
        drop(job_tx);
        while let Some(finished) = tasks.join_next_with_id().await {
            match finished {
                Ok((id, ())) if id == recorder => heartbeat.abort(),
                Ok(_) => {}
                Err(e) if e.is_cancelled() && e.id() == heartbeat.id() => {}
                Err(e) => return Err(e).context("a delivery task failed"),
            }
        }
        tracing::info!("delivery worker stopped");
        Ok(())
    }
}

/// Puts claimed jobs in the senders' buffer; the heartbeat renews their leases from now on.
async fn hold<S, M>(
    shared: &Shared<S, M>,
    buffer: &mpsc::Sender<Job>,
    jobs: Vec<Job>,
) -> anyhow::Result<()> {
    {
        let mut live = locked(&shared.live_claims);
        for job in &jobs {
            *live.entry(job.claim_id).or_default() += 1;
        }
    }
    for job in jobs {
        if buffer.send(job).await.is_err() {
            anyhow::bail!("the sending tasks stopped");
        }
    }
    Ok(())
}

/// How fast senders take jobs, so a claim holds about [`HOLD_AHEAD`] of sending.
struct Pace {
    since: Instant,
    handed_then: u64,
    per_second: f64,
}

impl Pace {
    fn new() -> Pace {
        Pace {
            since: Instant::now(),
            handed_then: 0,
            per_second: 0.0,
        }
    }

    fn update(&mut self, handed: u64) {
        let elapsed = self.since.elapsed();
        if elapsed < Duration::from_millis(100) {
            return;
        }
        let now = (handed - self.handed_then) as f64 / elapsed.as_secs_f64();
        self.per_second = (self.per_second + now) / 2.0;
        self.since = Instant::now();
        self.handed_then = handed;
    }

    /// The window for this pace: [`WINDOW_TIME`] of sending, at least the policy's minimum.
    /// The pace is measured over 100 ms and a burst can seem faster than the rate limit allows;
    /// the window is never sized for more than `rate_per_second` (seen: a window of 13 at a
    /// limit of 300 a second, where 40 ms is 12 mails).
    fn window(&self, policy: &DeliveryPolicy) -> usize {
        let pace = match policy.rate_per_second {
            0 => self.per_second,
            limit => self.per_second.min(f64::from(limit)),
        };
        let at_speed = (pace * WINDOW_TIME.as_secs_f64()).ceil() as usize;
        at_speed.max(policy.min_window()).min(MAX_WINDOW)
    }

    fn target(&self, policy: &DeliveryPolicy) -> usize {
        let ahead = (self.per_second * HOLD_AHEAD.as_secs_f64()).ceil() as usize;
        ahead
            .max(policy.concurrency)
            .min(policy.batch_size.max(policy.concurrency))
    }
}

/// `per_second` spread evenly: a burst of one mail per connection at most, not a second's worth
/// at once (a relay that takes 50 a second may well refuse 50 in the same instant).
fn rate_limiter(per_second: u32, concurrency: usize) -> Option<DefaultDirectRateLimiter> {
    let burst = NonZeroU32::new(u32::try_from(concurrency).unwrap_or(u32::MAX).max(1))?;
    NonZeroU32::new(per_second)
        .map(|rate| RateLimiter::direct(Quota::per_second(rate).allow_burst(burst.min(rate))))
}
