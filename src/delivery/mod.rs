//! The delivery worker: claims due rows from the queue, renders and sends each mail over one
//! of `delivery.concurrency` mail sessions, and records outcomes in batches. It runs inside
//! `serve` and alone as `worker`; on PostgreSQL any number of them share the queue.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::NaiveDateTime;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::{Mutex, Notify, mpsc, watch};
use tracing::Instrument;

use crate::configuration::Settings;
use crate::db::queue::{
    ClaimTerms, ClaimedDelivery, DeliveryOutcome, claim_due_deliveries, record_delivery_outcomes,
};
use crate::db::{Db, now};
use crate::domain::{DeliveryKind, mask_address};
use crate::email::{Composer, MailSession, Mailer, PreparedMail, SendError};

/// Longest wait between two attempts of one delivery.
const MAX_RETRY_DELAY_SECONDS: u64 = 6 * 3600;
/// Outcomes written in one transaction at most.
const OUTCOME_BATCH: usize = 512;
/// The recorder waits up to this long for more outcomes before writing a batch. Taking only
/// what was already waiting made ~6,000 small transactions of a 100,000-reader digest on
/// PostgreSQL; with 20 ms it is ~300, and the send is 5-10 % faster on both backends. A crash
/// re-sends at most the mail of those 20 ms (its rows are still `sending`).
const RECORD_LINGER: Duration = Duration::from_millis(20);

#[derive(Clone)]
pub struct Worker {
    db: Db,
    mailer: Mailer,
    composer: Arc<Composer>,
    settings: Arc<Settings>,
    wake: Arc<Notify>,
    digests: Arc<Mutex<HashMap<i64, Arc<PreparedMail>>>>,
}

impl Worker {
    pub fn new(
        db: Db,
        mailer: Mailer,
        composer: Arc<Composer>,
        settings: Arc<Settings>,
        wake: Arc<Notify>,
    ) -> Worker {
        Worker {
            db,
            mailer,
            composer,
            settings,
            wake,
            digests: Arc::default(),
        }
    }

    /// Sends until `stop` turns true, then finishes the mail it already claimed.
    pub async fn run_until_stopped(self, mut stop: watch::Receiver<bool>) -> anyhow::Result<()> {
        let delivery = &self.settings.delivery;
        tracing::info!(transport = %self.mailer.describe(), concurrency = delivery.concurrency, "delivery worker started");
        let (job_tx, job_rx) = mpsc::channel::<ClaimedDelivery>(delivery.concurrency * 2);
        let job_rx = Arc::new(Mutex::new(job_rx));
        let (outcome_tx, outcome_rx) = mpsc::channel::<DeliveryOutcome>(OUTCOME_BATCH * 2);
        let limiter = rate_limiter(delivery.rate_per_second).map(Arc::new);

        let recorder = tokio::spawn(self.clone().record_outcomes(outcome_rx).in_current_span());
        let mut senders = Vec::with_capacity(delivery.concurrency);
        for _ in 0..delivery.concurrency {
            let worker = self.clone();
            let jobs = job_rx.clone();
            let outcomes = outcome_tx.clone();
            let limiter = limiter.clone();
            senders.push(tokio::spawn(
                async move {
                    let mut session = worker.mailer.session();
                    loop {
                        let job = jobs.lock().await.recv().await;
                        let Some(job) = job else { break };
                        if let Some(limiter) = &limiter {
                            limiter.until_ready().await;
                        }
                        let outcome = worker.deliver(&mut session, job).await;
                        if outcomes.send(outcome).await.is_err() {
                            break;
                        }
                    }
                    session.close().await;
                }
                .in_current_span(),
            ));
        }
        drop(outcome_tx);

        let terms = ClaimTerms {
            limit: claim_limit(&self.settings),
            lease: chrono::Duration::seconds(delivery.lease_seconds as i64),
            token_ttl: chrono::Duration::hours(i64::from(self.settings.signup.token_ttl_hours)),
        };
        let idle = Duration::from_millis(delivery.poll_interval_ms.max(10));
        while !*stop.borrow() {
            let domain = self.composer.message_id_domain().to_string();
            let claimed = self
                .db
                .run(move |conn| claim_due_deliveries(conn, terms, &domain))
                .await;
            let jobs = match claimed {
                Ok(jobs) => jobs,
                Err(e) => {
                    tracing::warn!(
                        error = format!("{e:#}"),
                        "could not claim deliveries; trying again"
                    );
                    Vec::new()
                }
            };
            if jobs.is_empty() {
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(idle) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            tracing::debug!(count = jobs.len(), "claimed deliveries");
            for job in jobs {
                if job_tx.send(job).await.is_err() {
                    anyhow::bail!("the sending tasks stopped");
                }
            }
        }
        drop(job_tx);
        for sender in senders {
            let _ = sender.await;
        }
        recorder.await.context("the outcome recorder panicked")?;
        tracing::info!("delivery worker stopped");
        Ok(())
    }

    async fn deliver(&self, session: &mut MailSession, job: ClaimedDelivery) -> DeliveryOutcome {
        let to = mask_address(&job.email);
        let span =
            tracing::info_span!("deliver", delivery = job.id, kind = job.kind.as_str(), to = %to);
        async {
            let prepared = self.prepare(&job).await;
            let result = match prepared {
                Ok((envelope, bytes)) => session.send(&envelope, &bytes, &outbox_name(&job)).await,
                Err(e) => Err(SendError {
                    permanent: true,
                    bounce: false,
                    message: format!("{e:#}"),
                }),
            };
            match result {
                Ok(()) => {
                    tracing::info!(attempt = job.attempts, "sent");
                    DeliveryOutcome::Sent {
                        id: job.id,
                        digest_id: job.digest_id,
                    }
                }
                Err(e) => self.failure(&job, e),
            }
        }
        .instrument(span)
        .await
    }

    async fn prepare(
        &self,
        job: &ClaimedDelivery,
    ) -> anyhow::Result<(lettre::address::Envelope, Vec<u8>)> {
        let digest = match (job.kind, job.digest_id) {
            (DeliveryKind::Digest | DeliveryKind::Test, Some(id)) => {
                Some(self.prepared_digest(id).await?)
            }
            _ => None,
        };
        let mail = self.composer.render(job, digest.as_deref())?;
        let message = self.composer.build(job, mail)?;
        Ok((message.envelope().clone(), message.formatted()))
    }

    /// A digest rendered once per worker; each recipient's copy only fills in their parts.
    async fn prepared_digest(&self, digest_id: i64) -> anyhow::Result<Arc<PreparedMail>> {
        if let Some(content) = self.digests.lock().await.get(&digest_id) {
            return Ok(content.clone());
        }
        let content = crate::digests::load_content(&self.db, digest_id).await?;
        let content = Arc::new(self.composer.prepare_digest(&content)?);
        self.digests.lock().await.insert(digest_id, content.clone());
        Ok(content)
    }

    fn failure(&self, job: &ClaimedDelivery, error: SendError) -> DeliveryOutcome {
        let max_attempts = self.settings.delivery.max_attempts;
        if error.permanent || job.attempts >= max_attempts {
            tracing::warn!(attempt = job.attempts, error = %error, bounce = error.bounce, "delivery failed for good");
            let bounced_subscriber = if error.bounce {
                job.subscriber_id
            } else {
                None
            };
            return DeliveryOutcome::Failed {
                id: job.id,
                digest_id: job.digest_id,
                error: error.message,
                bounced_subscriber,
            };
        }
        let next_attempt_at = retry_at(self.settings.delivery.retry_base_seconds, job.attempts);
        tracing::warn!(attempt = job.attempts, error = %error, retry_at = %next_attempt_at, "delivery will be retried");
        DeliveryOutcome::Retry {
            id: job.id,
            error: error.message,
            next_attempt_at,
        }
    }

    /// Writes outcomes in batches; a failed write (a locked or restarting database) is retried,
    /// never dropped, so a sent mail is not sent again once the database is back.
    async fn record_outcomes(self, mut outcomes: mpsc::Receiver<DeliveryOutcome>) {
        let mut batch = Vec::with_capacity(OUTCOME_BATCH);
        while let Some(first) = outcomes.recv().await {
            batch.push(first);
            let deadline = tokio::time::Instant::now() + RECORD_LINGER;
            while batch.len() < OUTCOME_BATCH {
                match tokio::time::timeout_at(deadline, outcomes.recv()).await {
                    Ok(Some(next)) => batch.push(next),
                    _ => break,
                }
            }
            let mut delay = Duration::from_millis(100);
            loop {
                let pending = batch.clone();
                match self
                    .db
                    .run(move |conn| record_delivery_outcomes(conn, &pending))
                    .await
                {
                    Ok(()) => break,
                    Err(e) => {
                        tracing::warn!(
                            error = format!("{e:#}"),
                            "could not record delivery outcomes; retrying"
                        );
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(10));
                    }
                }
            }
            batch.clear();
        }
    }
}

fn rate_limiter(per_second: u32) -> Option<DefaultDirectRateLimiter> {
    NonZeroU32::new(per_second).map(|rate| RateLimiter::direct(Quota::per_second(rate)))
}

/// A claim holds no more than can be sent well within its lease.
fn claim_limit(settings: &Settings) -> i64 {
    let delivery = &settings.delivery;
    match delivery.rate_per_second {
        0 => delivery.batch_size,
        rate => delivery
            .batch_size
            .min((i64::from(rate) * delivery.lease_seconds as i64 / 4).max(1)),
    }
}

/// Exponential backoff: base, 2×base, 4×base, … capped at six hours.
pub fn retry_at(base_seconds: u64, attempts: i32) -> NaiveDateTime {
    let exponent = attempts.saturating_sub(1).clamp(0, 20) as u32;
    let delay = base_seconds
        .saturating_mul(1u64 << exponent)
        .min(MAX_RETRY_DELAY_SECONDS);
    now() + chrono::Duration::seconds(delay as i64)
}

fn outbox_name(job: &ClaimedDelivery) -> String {
    format!(
        "{}-{}-{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%S%.3f"),
        job.kind.as_str(),
        job.id
    )
}
