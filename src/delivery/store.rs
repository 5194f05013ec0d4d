//! What the worker needs from the database, as a small interface ([`Store`]) so the worker can
//! be tested alone, and its implementation over the real database ([`DbStore`]). The store
//! also owns the policy of what a claimed mail carries: a fresh confirmation or unsubscribe
//! token per copy (earlier copies' links keep working) and the stable Message-ID.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;

use super::Handoff;

use crate::configuration::Settings;
use crate::db::Db;
use crate::db::dashboard::{keep_totals, record_worker_heartbeat};
use crate::db::queue::{
    ClaimRequest, Finished, Reclaimed, RecordOptions, RecordReport, RecordTerms, RowSecrets,
    claim_due_deliveries, finish_drained_digests, reclaim_expired_leases, record_outcomes,
    renew_leases,
};
use crate::domain::{DeliveryKind, DigestStatus, Token};
use crate::email::{Composer, DigestContent, Letter};

/// While signups hand their confirmations over, how long a claim that found nothing due in the
/// database is trusted before the database is looked at again.
const LOOK_AGAIN_AFTER: Duration = Duration::from_millis(50);

/// A delivery the worker holds: its place in the queue and the letter to send.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: i64,
    pub claim_id: i64,
    /// Counting this one.
    pub attempts: i32,
    pub subscriber_id: Option<i64>,
    pub digest_id: Option<i64>,
    pub letter: Letter,
}

impl Job {
    /// This job's outcome, for the recorder.
    pub fn finished(&self, outcome: crate::db::queue::Outcome) -> Finished {
        Finished {
            id: self.id,
            claim_id: self.claim_id,
            digest_id: self.digest_id,
            subscriber_id: self.subscriber_id,
            outcome,
        }
    }
}

/// What a claim gave.
#[derive(Debug, Default)]
pub struct Claimed {
    pub jobs: Vec<Job>,
    /// Digests that were sending when the claim was made.
    pub sending_digests: Vec<i64>,
    /// Those of them with nothing more due.
    pub drained_digests: Vec<i64>,
    /// The database was not looked at this time: when to look, at the latest.
    pub look_again_in: Option<Duration>,
}

/// The queue as the worker sees it.
pub trait Store: Clone + Send + Sync + 'static {
    /// Takes up to `limit` due deliveries under a new claim and lease.
    fn claim(&self, limit: usize) -> impl Future<Output = anyhow::Result<Claimed>> + Send;
    /// Extends the leases of what these claims still hold (none: only says the worker is alive).
    fn renew(&self, claims: Vec<i64>) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// Writes outcomes, fenced by their claims.
    fn record(
        &self,
        batch: Vec<Finished>,
        options: RecordOptions,
    ) -> impl Future<Output = anyhow::Result<RecordReport>> + Send;
    /// Takes back rows whose lease ran out.
    fn reclaim(&self) -> impl Future<Output = anyhow::Result<Reclaimed>> + Send;
    /// Marks `sent` those of these digests with nothing left open; their statuses.
    fn finish(
        &self,
        digests: Vec<i64>,
    ) -> impl Future<Output = anyhow::Result<Vec<(i64, DigestStatus)>>> + Send;
    /// The shared content of a digest, for rendering.
    fn digest_content(
        &self,
        digest_id: i64,
    ) -> impl Future<Output = anyhow::Result<DigestContent>> + Send;
    /// The worker starts: mail may be handed to it directly (see [`super::Handoff`]).
    fn open(&self) {}
    /// The worker stops: what was handed to it and not yet claimed, for it to release.
    fn close(&self) -> Vec<Job> {
        Vec::new()
    }
}

/// The store over the real database.
#[derive(Clone)]
pub struct DbStore {
    db: Db,
    composer: Arc<Composer>,
    lease: chrono::Duration,
    token_ttl: chrono::Duration,
    max_attempts: i32,
    terms: RecordTerms,
    /// Per digest, the highest id this worker claimed of it (see [`ClaimRequest`]).
    digest_cursors: Arc<std::sync::Mutex<HashMap<i64, i64>>>,
    /// Who this worker is in the `workers` table (the dashboard's "worker last seen").
    identity: Arc<WorkerIdentity>,
    /// Confirmations handed over by signups in this process.
    handoff: Option<Arc<Handoff>>,
    /// When the last claim from the database found nothing, if it did, and how many jobs had
    /// been handed over by then.
    found_empty: Arc<std::sync::Mutex<Option<(Instant, u64)>>>,
}

struct WorkerIdentity {
    id: String,
    host: String,
    started_at: chrono::NaiveDateTime,
}

impl DbStore {
    pub fn new(db: Db, composer: Arc<Composer>, settings: &Settings) -> DbStore {
        DbStore {
            db,
            composer,
            lease: chrono::Duration::seconds(settings.delivery.lease_seconds as i64),
            token_ttl: chrono::Duration::hours(i64::from(settings.signup.token_ttl_hours)),
            max_attempts: settings.delivery.max_attempts,
            terms: RecordTerms {
                pause_after_failures: settings.delivery.pause_after_failures,
            },
            digest_cursors: Arc::default(),
            identity: Arc::new(WorkerIdentity {
                id: Token::generate().as_str()[..16].to_string(),
                host: format!(
                    "{} (pid {})",
                    hostname::get()
                        .map(|h| h.to_string_lossy().into_owned())
                        .unwrap_or_else(|_| "unknown host".into()),
                    std::process::id()
                ),
                started_at: crate::db::now(),
            }),
            handoff: None,
            found_empty: Arc::default(),
        }
    }

    /// Takes confirmations straight from signups (see [`Handoff`]).
    pub fn with_handoff(mut self, handoff: Arc<Handoff>) -> DbStore {
        self.handoff = Some(handoff);
        self
    }
}

/// What was minted for a claimed row; of the tokens only their hashes reach the database.
#[derive(Default)]
struct Minted {
    message_id: String,
    confirm: Option<Token>,
    unsubscribe: Option<Token>,
}

impl DbStore {
    /// Claims due rows from the database.
    async fn claim_from_db(&self, limit: usize) -> anyhow::Result<Claimed> {
        let request = ClaimRequest {
            claim_id: rand::rng().random_range(1..i64::MAX),
            limit: limit as i64,
            lease: self.lease,
            digest_cursors: super::locked(&self.digest_cursors).clone(),
        };
        let (composer, ttl) = (self.composer.clone(), self.token_ttl);
        let (claim, mut minted) = self
            .db
            .run(move |conn| {
                let mut minted: HashMap<i64, Minted> = HashMap::new();
                let claim = claim_due_deliveries(conn, &request, &mut |row| {
                    let message_id = composer.message_id(row.kind, row.id);
                    let mut tokens = Minted {
                        message_id: message_id.clone(),
                        ..Minted::default()
                    };
                    let mut secrets = RowSecrets {
                        message_id,
                        ..RowSecrets::default()
                    };
                    match (row.kind, row.subscriber_id) {
                        (DeliveryKind::Confirmation, Some(_)) => {
                            let token = Token::generate();
                            secrets.confirmation = Some((token.hash(), crate::db::now() + ttl));
                            tokens.confirm = Some(token);
                        }
                        (DeliveryKind::Welcome | DeliveryKind::Digest, Some(_)) => {
                            let token = Token::generate();
                            secrets.unsubscribe_hash = Some(token.hash());
                            tokens.unsubscribe = Some(token);
                        }
                        _ => {}
                    }
                    minted.insert(row.id, tokens);
                    secrets
                })?;
                Ok((claim, minted))
            })
            .await?;
        {
            let mut cursors = super::locked(&self.digest_cursors);
            // Only the digests still sending keep a cursor.
            cursors.retain(|digest, _| claim.sending_digests.contains(digest));
            cursors.extend(claim.digest_cursors.iter().copied());
        }
        let jobs = claim
            .rows
            .into_iter()
            .map(|row| {
                let tokens = minted.remove(&row.id).unwrap_or_default();
                Job {
                    id: row.id,
                    claim_id: row.claim_id,
                    attempts: row.attempts,
                    subscriber_id: row.subscriber_id,
                    digest_id: row.digest_id,
                    letter: Letter {
                        delivery_id: Some(row.id),
                        kind: row.kind,
                        message_id: tokens.message_id,
                        to: row.email,
                        name: row.name,
                        confirm_token: tokens.confirm,
                        unsubscribe_token: tokens.unsubscribe,
                        sample: false,
                    },
                }
            })
            .collect();
        Ok(Claimed {
            jobs,
            sending_digests: claim.sending_digests,
            drained_digests: claim.drained_digests,
            look_again_in: None,
        })
    }
}

impl Store for DbStore {
    /// Jobs handed over by signups, and the database. The database is not looked at when it
    /// was found empty less than [`LOOK_AGAIN_AFTER`] ago and signups have handed jobs over
    /// since: under a flood of signups every one of them wakes the worker, and each wake-up
    /// would otherwise cost a transaction that finds nothing, while other mail still waits at
    /// most that long. When it is looked at, it gets half the claim (one row at least), so a
    /// flood of signups does not hold up mail in the queue.
    async fn claim(&self, limit: usize) -> anyhow::Result<Claimed> {
        let Some(handoff) = &self.handoff else {
            return self.claim_from_db(limit).await;
        };
        let empty = *super::locked(&self.found_empty);
        let look_again_in = empty.and_then(|(at, delivered)| {
            (handoff.delivered() != delivered)
                .then(|| LOOK_AGAIN_AFTER.checked_sub(at.elapsed()))
                .flatten()
        });
        if look_again_in.is_some() {
            return Ok(Claimed {
                jobs: handoff.take(limit),
                look_again_in,
                ..Claimed::default()
            });
        }
        let delivered = handoff.delivered();
        let mut handed = handoff.take(limit.div_ceil(2));
        let mut claimed = match self
            .claim_from_db(limit.saturating_sub(handed.len()).max(1))
            .await
        {
            Ok(claimed) => claimed,
            // The handed mail is claimed already: it goes, whatever the queue's trouble.
            Err(e) if !handed.is_empty() => {
                tracing::warn!(error = format!("{e:#}"), "could not claim deliveries");
                return Ok(Claimed {
                    jobs: handed,
                    ..Claimed::default()
                });
            }
            Err(e) => return Err(e),
        };
        *super::locked(&self.found_empty) =
            claimed.jobs.is_empty().then(|| (Instant::now(), delivered));
        handed.append(&mut claimed.jobs);
        claimed.jobs = handed;
        Ok(claimed)
    }

    fn open(&self) {
        if let Some(handoff) = &self.handoff {
            handoff.open();
        }
    }

    fn close(&self) -> Vec<Job> {
        self.handoff
            .as_ref()
            .map(|handoff| handoff.close())
            .unwrap_or_default()
    }

    async fn finish(&self, digests: Vec<i64>) -> anyhow::Result<Vec<(i64, DigestStatus)>> {
        let statuses = self
            .db
            .run(move |conn| finish_drained_digests(conn, &digests))
            .await?;
        let ended: Vec<i64> = statuses
            .iter()
            .filter(|(_, status)| matches!(status, DigestStatus::Sent | DigestStatus::Cancelled))
            .map(|(id, _)| *id)
            .collect();
        if !ended.is_empty() {
            // Off the worker's path: the dashboard's totals of a send that just ended.
            let db = self.db.clone();
            tokio::spawn(async move {
                if let Err(e) = db.run(move |conn| keep_totals(conn, &ended)).await {
                    tracing::warn!(
                        error = format!("{e:#}"),
                        "could not keep the totals of finished digests"
                    );
                }
            });
        }
        Ok(statuses)
    }

    async fn renew(&self, mut claims: Vec<i64>) -> anyhow::Result<()> {
        if let Some(handoff) = &self.handoff {
            claims.extend(handoff.waiting_claims());
        }
        let until = crate::db::now() + self.lease;
        let me = self.identity.clone();
        self.db
            .run(move |conn| {
                renew_leases(conn, &claims, until)?;
                crate::db::write_tx(conn, |conn| {
                    Ok(record_worker_heartbeat(
                        conn,
                        &me.id,
                        &me.host,
                        me.started_at,
                    )?)
                })
            })
            .await?;
        Ok(())
    }

    async fn record(
        &self,
        batch: Vec<Finished>,
        options: RecordOptions,
    ) -> anyhow::Result<RecordReport> {
        let terms = self.terms;
        self.db
            .run(move |conn| record_outcomes(conn, &batch, &terms, &options))
            .await
    }

    async fn reclaim(&self) -> anyhow::Result<Reclaimed> {
        let max_attempts = self.max_attempts;
        self.db
            .run(move |conn| reclaim_expired_leases(conn, max_attempts))
            .await
    }

    async fn digest_content(&self, digest_id: i64) -> anyhow::Result<DigestContent> {
        crate::digests::load_content(&self.db, digest_id).await
    }
}
