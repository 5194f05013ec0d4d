//! What the worker needs from the database, as a small interface ([`Store`]) so the worker can
//! be tested alone, and its implementation over the real database ([`DbStore`]). The store
//! also owns the policy of what a claimed mail carries: a fresh confirmation or unsubscribe
//! token per copy (earlier copies' links keep working) and the stable Message-ID.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use rand::Rng;

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
        }
    }
}

/// What was minted for a claimed row; of the tokens only their hashes reach the database.
#[derive(Default)]
struct Minted {
    message_id: String,
    confirm: Option<Token>,
    unsubscribe: Option<Token>,
}

impl Store for DbStore {
    async fn claim(&self, limit: usize) -> anyhow::Result<Claimed> {
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
        })
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

    async fn renew(&self, claims: Vec<i64>) -> anyhow::Result<()> {
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
