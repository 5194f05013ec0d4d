//! The sending tasks: each takes a permit of the window, a job from the buffer, checks that
//! its digest may still send, renders the letter and sends it over its own session.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use futures_util::FutureExt;
use tokio::sync::{Mutex, OwnedSemaphorePermit, mpsc, watch};
use tracing::Instrument;

use super::throttle::{Admission, Feedback, domain_of};
use super::{Messenger, Session, Shared, Store, store::Job};
use crate::db::queue::{Finished, Outcome};
use crate::domain::{DeliveryKind, FailureKind, Verdict, mask_address, mask_addresses_in};
use crate::email::SendError;

/// Longest wait between two attempts of one delivery.
const MAX_RETRY_DELAY_SECONDS: u64 = 6 * 3600;

/// A job's outcome on its way to the recorder, with the permit of the window it holds.
pub(super) struct Done {
    pub finished: Finished,
    pub permit: OwnedSemaphorePermit,
}

pub(super) async fn send_jobs<S: Store, M: Messenger>(
    shared: Arc<Shared<S, M>>,
    jobs: Arc<Mutex<mpsc::Receiver<Job>>>,
    done: mpsc::Sender<Done>,
    stop: watch::Receiver<bool>,
) {
    let mut session = shared.messenger.session();
    loop {
        let Ok(permit) = shared.window.permits.clone().acquire_owned().await else {
            break;
        };
        let job = jobs.lock().await.recv().await;
        let Some(job) = job else { break };
        shared.handed.fetch_add(1, Ordering::Relaxed);
        shared.taken.notify_one();
        let may_send = |job: &Job| !*stop.borrow() && shared.gate.allows(job.digest_id);
        let outcome = if may_send(&job) {
            send_one(&shared, &mut session, &job, may_send).await
        } else {
            Outcome::Released
        };
        let finished = job.finished(outcome);
        if done.send(Done { finished, permit }).await.is_err() {
            break;
        }
    }
    session.close().await;
}

/// Sends one job that may go, unless its domain's pace puts it off, and counts what became of
/// it. `may_send` is asked again after any wait for the rate limit.
async fn send_one<S: Store, M: Messenger>(
    shared: &Shared<S, M>,
    session: &mut M::Session,
    job: &Job,
    may_send: impl Fn(&Job) -> bool,
) -> Outcome {
    let kind = job.letter.kind.as_str();
    let domain = domain_of(&job.letter.to);
    let ticket = match shared.throttle.admit(job.id, domain, Instant::now()) {
        Admission::Go(ticket) => ticket,
        Admission::Later(slot) => {
            shared.metrics.deferred(kind);
            return Outcome::Deferred { at: db_time(slot) };
        }
    };
    if let Some(limiter) = &shared.limiter {
        limiter.until_ready().await;
    }
    // Checked again right before the message: the wait may have been long.
    if !may_send(job) {
        shared.throttle.release(ticket, domain);
        return Outcome::Released;
    }
    let started = Instant::now();
    let (outcome, feedback) = deliver(shared, session, job).await;
    let retry_slot = shared
        .throttle
        .settle(ticket, job.id, domain, feedback, Instant::now());
    let counted = match &outcome {
        Outcome::Sent => Some("sent"),
        Outcome::Retry { .. } => Some("retry"),
        Outcome::Failed { .. } => Some("failed"),
        Outcome::Released | Outcome::Deferred { .. } => None,
    };
    if let Some(counted) = counted {
        shared.metrics.delivered(kind, counted, started.elapsed());
    }
    match (outcome, retry_slot) {
        // The next try waits for its slot of the domain's pace, if that is later.
        (Outcome::Retry { at, error }, Some(slot)) => Outcome::Retry {
            at: at.max(db_time(slot)),
            error,
        },
        (outcome, _) => outcome,
    }
}

/// A moment of this process's clock as the database's time.
fn db_time(at: Instant) -> chrono::NaiveDateTime {
    let ahead = at.saturating_duration_since(Instant::now());
    // A slot is at most hours ahead; a day stands in for one too far to convert.
    crate::db::now() + chrono::Duration::from_std(ahead).unwrap_or(chrono::Duration::days(1))
}

/// Sends one job; what became of it, and what the answer says about its domain. A panic on
/// the way (a bug) is caught: the job is retried later and the session started afresh, instead
/// of the row staying leased by a dead task.
async fn deliver<S: Store, M: Messenger>(
    shared: &Shared<S, M>,
    session: &mut M::Session,
    job: &Job,
) -> (Outcome, Feedback) {
    let span = tracing::info_span!(
        "deliver",
        delivery = job.id,
        kind = job.letter.kind.as_str(),
        to = %mask_address(&job.letter.to)
    );
    let attempt = std::panic::AssertUnwindSafe(try_deliver(shared, session, job).instrument(span))
        .catch_unwind()
        .await;
    match attempt {
        Ok(outcome) => outcome,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(
                delivery = job.id,
                panic = what,
                "the worker failed while sending a mail"
            );
            *session = shared.messenger.session();
            let outcome = retry_or_give_up(
                &shared.policy,
                job,
                format!("the worker failed while sending this mail: {what}"),
                FailureKind::Local,
            );
            (outcome, Feedback::Neutral)
        }
    }
}

async fn try_deliver<S: Store, M: Messenger>(
    shared: &Shared<S, M>,
    session: &mut M::Session,
    job: &Job,
) -> (Outcome, Feedback) {
    let digest = match (job.letter.kind, job.digest_id) {
        (DeliveryKind::Digest | DeliveryKind::Test, Some(id)) => {
            match prepared_digest(shared, id).await {
                Ok(digest) => Some(digest),
                // The database (busy, out of connections, restarting): not the mail's fault.
                Err(e) => {
                    tracing::warn!(
                        error = format!("{e:#}"),
                        "could not load the digest; will retry"
                    );
                    let outcome = retry_or_give_up(
                        &shared.policy,
                        job,
                        format!("could not load the digest: {e:#}"),
                        FailureKind::Local,
                    );
                    return (outcome, Feedback::Neutral);
                }
            }
        }
        _ => None,
    };
    let built = shared
        .composer
        .render_wire(&job.letter, digest.as_deref())
        .and_then(|mail| shared.composer.build_wire(&job.letter, mail));
    let message = match built {
        Ok(message) => message,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "could not build the mail");
            let outcome = Outcome::Failed {
                failure: FailureKind::Local,
                error: format!("could not build the mail: {e:#}"),
            };
            return (outcome, Feedback::Neutral);
        }
    };
    let sent = session
        .send(
            &shared.composer.envelope(&job.letter, &message),
            &message.formatted(),
            &outbox_name(job),
        )
        .await;
    let feedback = Feedback::of(&sent);
    let outcome = match sent {
        Ok(()) => {
            tracing::info!(attempt = job.attempts, "sent");
            Outcome::Sent
        }
        Err(e) => refused(&shared.policy, job, e),
    };
    (outcome, feedback)
}

/// A digest rendered once per worker; each recipient's copy only fills in their parts. Senders
/// that start on a digest together wait for one rendering: each used to load and render it
/// itself, eight times at once with the default concurrency, and the first mail waited for
/// them all. A rendering that fails (the database out of reach) leaves the next one to try.
async fn prepared_digest<S: Store, M: Messenger>(
    shared: &Shared<S, M>,
    digest_id: i64,
) -> anyhow::Result<Arc<crate::email::PreparedMail>> {
    let once = shared
        .digests
        .lock()
        .await
        .entry(digest_id)
        .or_default()
        .clone();
    let prepared = once
        .get_or_try_init(|| async {
            let content = shared.store.digest_content(digest_id).await?;
            anyhow::Ok(Arc::new(shared.composer.prepare_digest(&content)?))
        })
        .await?;
    Ok(prepared.clone())
}

/// What a refusal (or a dropped connection) means for this job.
fn refused(policy: &super::DeliveryPolicy, job: &Job, error: SendError) -> Outcome {
    let reply = mask_addresses_in(&error.message);
    let failure = match error.verdict() {
        Verdict::Retry => {
            let failure = match crate::domain::smtp_reply::exhausted(error.stage) {
                Verdict::Recipient => FailureKind::Recipient,
                _ => FailureKind::Sender,
            };
            return retry_or_give_up(policy, job, error.message, failure);
        }
        Verdict::Bounce => FailureKind::Bounce,
        Verdict::Recipient => FailureKind::Recipient,
        Verdict::Sender => FailureKind::Sender,
    };
    tracing::warn!(
        attempt = job.attempts,
        error = reply,
        failure = failure.as_str(),
        "delivery failed for good"
    );
    Outcome::Failed {
        failure,
        error: error.message,
    }
}

/// Another try after a growing delay, or, out of attempts, a failure of kind `exhausted`.
fn retry_or_give_up(
    policy: &super::DeliveryPolicy,
    job: &Job,
    error: String,
    exhausted: FailureKind,
) -> Outcome {
    let logged = mask_addresses_in(&error);
    if job.attempts >= policy.max_attempts {
        tracing::warn!(
            attempt = job.attempts,
            error = logged,
            "delivery failed for good: out of attempts"
        );
        return Outcome::Failed {
            failure: exhausted,
            error: format!("gave up after {} attempts: {error}", job.attempts),
        };
    }
    let at = retry_at(policy.retry_base_seconds, job.attempts);
    tracing::warn!(attempt = job.attempts, error = logged, retry_at = %at, "delivery will be retried");
    Outcome::Retry { at, error }
}

/// Exponential backoff: base, 2×base, 4×base, … capped at six hours.
pub fn retry_at(base_seconds: u64, attempts: i32) -> chrono::NaiveDateTime {
    let exponent = attempts.saturating_sub(1).clamp(0, 20) as u32;
    let delay = base_seconds
        .saturating_mul(1u64 << exponent)
        .min(MAX_RETRY_DELAY_SECONDS);
    crate::db::now() + chrono::Duration::seconds(delay as i64)
}

fn outbox_name(job: &Job) -> String {
    format!(
        "{}-{}-{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%S%.3f"),
        job.letter.kind.as_str(),
        job.id
    )
}
