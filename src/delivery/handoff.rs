//! Signups hand their confirmation straight to this process's worker.
//!
//! A queued confirmation costs a claim: a transaction that finds the row, marks it `sending`
//! under a lease (a second version of the row, in every index of the table) and stores its
//! token. In the signup benchmark on PostgreSQL that was a third of the database's work per
//! signup. Here the signup's own transaction writes the confirmation already `sending`, under a
//! lease and claim of this worker, with its token's hash; once it commits, the job waits in the
//! worker's inbox and the worker takes it with its next claim.
//!
//! Nothing the queue promises changes. The row is leased exactly as a claim would have leased
//! it, so a crash before it is sent leaves it to run out and be claimed again (with a fresh
//! token). The worker's heartbeat renews the leases of what waits in the inbox as it renews the
//! rest, so a slow relay does not let them lapse. The inbox is bounded: when it is full, or no
//! worker is running here, a signup queues its confirmation as before.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use chrono::Duration;
use rand::Rng;
use tokio::sync::Notify;

use super::locked;
use super::store::Job;
use crate::db::group_commit::GroupCommit;
use crate::db::queue::{HandTerms, HandedConfirmation};
use crate::db::subscribers::{Signup, SignupOutcome, record_signups};
use crate::db::{Db, DbConnection};
use crate::domain::DeliveryKind;
use crate::email::{Composer, Letter};

/// The worker's inbox of confirmations handed to it by signups.
pub struct Handoff {
    inbox: std::sync::Mutex<Inbox>,
    /// Most jobs waiting or promised at once.
    capacity: usize,
    /// Only while the worker runs.
    open: AtomicBool,
    /// Jobs delivered to the inbox so far.
    delivered: AtomicU64,
    composer: Arc<Composer>,
    lease: Duration,
    token_ttl: Duration,
    wake: Arc<Notify>,
}

#[derive(Default)]
struct Inbox {
    jobs: VecDeque<Job>,
    /// Room promised to signups whose transactions have not ended yet.
    promised: usize,
}

/// A signup as written, with its confirmation while it waits for its transaction to commit.
pub struct Signed {
    pub outcome: SignupOutcome,
    handed: Option<Handed>,
}

impl Signed {
    /// After the transaction committed: the confirmation goes to the worker.
    pub fn committed(&mut self) {
        if let Some(handed) = self.handed.take() {
            handed.deliver();
        }
    }
}

/// A confirmation written for the worker, and its room in the inbox. Dropped without
/// [`Handed::deliver`] (its transaction rolled back), it gives the room back.
struct Handed {
    handoff: Arc<Handoff>,
    job: Option<Job>,
}

impl Handed {
    fn deliver(mut self) {
        if let Some(job) = self.job.take() {
            let mut inbox = locked(&self.handoff.inbox);
            inbox.promised -= 1;
            inbox.jobs.push_back(job);
            self.handoff.delivered.fetch_add(1, Ordering::Relaxed);
        }
        self.handoff.wake.notify_one();
    }
}

impl Drop for Handed {
    fn drop(&mut self) {
        if self.job.is_some() {
            locked(&self.handoff.inbox).promised -= 1;
        }
    }
}

impl Handoff {
    pub fn new(
        composer: Arc<Composer>,
        capacity: usize,
        lease: Duration,
        token_ttl: Duration,
        wake: Arc<Notify>,
    ) -> Handoff {
        Handoff {
            inbox: std::sync::Mutex::default(),
            capacity,
            open: AtomicBool::new(false),
            delivered: AtomicU64::new(0),
            composer,
            lease,
            token_ttl,
            wake,
        }
    }

    /// The inbox of this process's worker: room for a claim's worth of confirmations
    /// (`delivery.batch_size`), leased as its claims are.
    pub fn for_settings(
        parts: &crate::startup::Parts,
        settings: &crate::configuration::Settings,
        wake: Arc<Notify>,
    ) -> Handoff {
        Handoff::new(
            parts.composer.clone(),
            settings.delivery.batch_size.max(1) as usize,
            Duration::seconds(settings.delivery.lease_seconds as i64),
            Duration::hours(i64::from(settings.signup.token_ttl_hours)),
            wake,
        )
    }

    /// Records a batch of signups inside the caller's transaction (see
    /// [`crate::db::subscribers::record_signups`]), handing as many confirmations to the worker
    /// as its inbox has room for.
    pub fn record_signups(
        self: &Arc<Self>,
        conn: &mut DbConnection,
        signups: &[Signup],
    ) -> anyhow::Result<Vec<Signed>> {
        let room = self.promise(signups.len());
        let now = crate::db::now();
        let message_id_around = self.composer.message_id_around(DeliveryKind::Confirmation);
        let terms = HandTerms {
            room,
            now,
            claim_id: rand::rng().random_range(1..i64::MAX),
            lease_until: now + self.lease,
            token_expires_at: now + self.token_ttl,
            message_id_around: &message_id_around,
        };
        // From here every promised place is either taken by a `Handed` or given back.
        let written = record_signups(conn, signups, Some(&terms));
        let written = match written {
            Ok(written) => written,
            Err(e) => {
                locked(&self.inbox).promised -= room;
                return Err(e);
            }
        };
        let handed = written.iter().filter(|(_, h)| h.is_some()).count();
        locked(&self.inbox).promised -= room - handed;
        Ok(written
            .into_iter()
            .zip(signups)
            .map(|((outcome, handed), signup)| Signed {
                outcome,
                handed: handed.map(|row| Handed {
                    handoff: self.clone(),
                    job: Some(job_of(row, terms.claim_id, signup)),
                }),
            })
            .collect())
    }

    /// Promises room for up to `wanted` jobs; how many it could.
    fn promise(&self, wanted: usize) -> usize {
        if !self.open.load(Ordering::Acquire) {
            return 0;
        }
        let mut inbox = locked(&self.inbox);
        let free = self
            .capacity
            .saturating_sub(inbox.jobs.len() + inbox.promised);
        let room = free.min(wanted);
        inbox.promised += room;
        room
    }

    /// The worker runs: signups may hand it their confirmations.
    pub fn open(&self) {
        self.open.store(true, Ordering::Release);
    }

    /// The worker stops: no more hand-offs; what waits is given back to it, to release.
    pub fn close(&self) -> Vec<Job> {
        self.open.store(false, Ordering::Release);
        locked(&self.inbox).jobs.drain(..).collect()
    }

    /// How many jobs signups have handed over so far.
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    /// Up to `limit` waiting jobs, oldest first.
    pub fn take(&self, limit: usize) -> Vec<Job> {
        let mut inbox = locked(&self.inbox);
        let count = limit.min(inbox.jobs.len());
        inbox.jobs.drain(..count).collect()
    }

    /// The claims of the jobs waiting, whose leases the heartbeat renews.
    pub fn waiting_claims(&self) -> Vec<i64> {
        let mut claims: Vec<i64> = locked(&self.inbox)
            .jobs
            .iter()
            .map(|job| job.claim_id)
            .collect();
        claims.dedup();
        claims
    }
}

/// The job of a confirmation written for the worker.
fn job_of(row: HandedConfirmation, claim_id: i64, signup: &Signup) -> Job {
    Job {
        id: row.delivery_id,
        claim_id,
        attempts: 1,
        subscriber_id: Some(row.subscriber_id),
        digest_id: None,
        letter: Letter {
            delivery_id: Some(row.delivery_id),
            kind: DeliveryKind::Confirmation,
            message_id: row.message_id,
            to: signup.email.as_str().to_string(),
            name: signup.name.as_ref().map(|n| n.as_str().to_string()),
            confirm_token: Some(row.token),
            unsubscribe_token: None,
            sample: false,
        },
    }
}

/// The signup writer of a process: group-commits signups and, when this process runs a worker
/// (`handoff`), hands their confirmations to it.
pub fn signup_writer(db: Db, handoff: Option<Arc<Handoff>>) -> GroupCommit<Signup, Signed> {
    GroupCommit::start_with_hook(
        db,
        move |conn, signups| match &handoff {
            Some(handoff) => handoff.record_signups(conn, signups),
            None => Ok(record_signups(conn, signups, None)?
                .into_iter()
                .map(|(outcome, _)| Signed {
                    outcome,
                    handed: None,
                })
                .collect()),
        },
        Signed::committed,
    )
}
