//! The worker alone, against an in-memory store and messenger: the rules that do not need a
//! database or an SMTP server to be seen (those are tested end to end in `tests/`).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lettre::address::Envelope;
use tokio::sync::{Notify, watch};

use super::*;
use crate::db::queue::{Finished, Outcome, Reclaimed, RecordReport};
use crate::domain::{DeliveryKind, DigestStatus, Token};
use crate::email::{DigestContent, Letter, SendError};

#[derive(Default)]
struct Memory {
    queue: VecDeque<Job>,
    recorded: Vec<Finished>,
    digest_unavailable: bool,
    /// How many times a digest's content was read.
    digest_loads: usize,
    /// While true, `record` waits (a database that cannot be written).
    record_blocked: bool,
}

#[derive(Clone, Default)]
struct MemoryStore {
    memory: Arc<Mutex<Memory>>,
    unblocked: Arc<Notify>,
}

impl MemoryStore {
    fn with_jobs(jobs: Vec<Job>) -> MemoryStore {
        let store = MemoryStore::default();
        store.memory.lock().unwrap().queue.extend(jobs);
        store
    }

    fn recorded(&self) -> Vec<Finished> {
        self.memory.lock().unwrap().recorded.clone()
    }

    fn outcomes_of(&self, id: i64) -> Vec<Outcome> {
        self.recorded()
            .into_iter()
            .filter(|f| f.id == id)
            .map(|f| f.outcome)
            .collect()
    }
}

impl Store for MemoryStore {
    async fn claim(&self, limit: usize) -> anyhow::Result<Claimed> {
        let mut memory = self.memory.lock().unwrap();
        let take = limit.min(memory.queue.len());
        Ok(Claimed {
            jobs: memory.queue.drain(..take).collect(),
            ..Claimed::default()
        })
    }

    async fn renew(&self, _claims: Vec<i64>) -> anyhow::Result<()> {
        Ok(())
    }

    async fn record(
        &self,
        batch: Vec<Finished>,
        _options: crate::db::queue::RecordOptions,
    ) -> anyhow::Result<RecordReport> {
        loop {
            let unblocked = self.unblocked.notified();
            if !self.memory.lock().unwrap().record_blocked {
                break;
            }
            unblocked.await;
        }
        self.memory.lock().unwrap().recorded.extend(batch);
        Ok(RecordReport::default())
    }

    async fn reclaim(&self) -> anyhow::Result<Reclaimed> {
        Ok(Reclaimed::default())
    }

    async fn finish(&self, _digests: Vec<i64>) -> anyhow::Result<Vec<(i64, DigestStatus)>> {
        Ok(Vec::new())
    }

    async fn digest_content(&self, _digest_id: i64) -> anyhow::Result<DigestContent> {
        {
            let mut memory = self.memory.lock().unwrap();
            memory.digest_loads += 1;
            if memory.digest_unavailable {
                return Err(crate::db::Unavailable("database is locked".into()).into());
            }
        }
        // As the database: the other senders get to ask meanwhile.
        tokio::time::sleep(Duration::from_millis(20)).await;
        Ok(DigestContent {
            subject: "Latest research".into(),
            intro_html: String::new(),
            intro_text: String::new(),
            articles: Vec::new(),
            archive_path: None,
        })
    }
}

/// Accepts every message (after `delay`), except that it panics for `panic_for`.
#[derive(Clone, Default)]
struct MemoryMessenger {
    sent: Arc<Mutex<Vec<String>>>,
    panic_for: Option<String>,
    delay: Duration,
}

struct MemorySession(MemoryMessenger);

impl Messenger for MemoryMessenger {
    type Session = MemorySession;

    fn session(&self) -> MemorySession {
        MemorySession(self.clone())
    }

    fn describe(&self) -> String {
        "memory".into()
    }
}

impl Session for MemorySession {
    async fn send(
        &mut self,
        envelope: &Envelope,
        _message: &[u8],
        _name: &str,
    ) -> Result<(), SendError> {
        let to = envelope.to()[0].to_string();
        tokio::time::sleep(self.0.delay).await;
        assert!(
            self.0.panic_for.as_ref() != Some(&to),
            "a bug while sending"
        );
        self.0.sent.lock().unwrap().push(to);
        Ok(())
    }

    async fn close(&mut self) {}
}

fn digest_job(id: i64, digest_id: i64) -> Job {
    Job {
        id,
        claim_id: 1,
        attempts: 1,
        subscriber_id: Some(id),
        digest_id: Some(digest_id),
        letter: Letter {
            delivery_id: Some(id),
            kind: DeliveryKind::Digest,
            to: format!("reader{id}@example.org"),
            name: None,
            message_id: format!("<digest.{id}@example.org>"),
            confirm_token: None,
            unsubscribe_token: Some(Token::generate()),
            sample: false,
        },
    }
}

fn policy(concurrency: usize) -> DeliveryPolicy {
    let settings = Settings::load(None).unwrap();
    DeliveryPolicy {
        concurrency,
        poll_interval: Duration::from_millis(10),
        ..DeliveryPolicy::from_settings(&settings.delivery)
    }
}

struct Running {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    async fn stop(self) {
        self.stop.send(true).unwrap();
        self.task.await.unwrap().unwrap();
    }
}

fn start(
    store: &MemoryStore,
    messenger: &MemoryMessenger,
    policy: DeliveryPolicy,
    gate: DigestGate,
) -> Running {
    let settings = Settings::load(None).unwrap();
    let templates = Arc::new(crate::email::Templates::load().unwrap());
    let composer = Arc::new(Composer::new(&settings, templates, None).unwrap());
    let worker = Worker::new(
        store.clone(),
        messenger.clone(),
        composer,
        policy,
        Arc::default(),
        gate,
    );
    let (stop, stopped) = watch::channel(false);
    Running {
        stop,
        task: tokio::spawn(worker.run_until_stopped(stopped)),
    }
}

async fn until(what: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !what() {
        assert!(tokio::time::Instant::now() < deadline, "timed out");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_database_error_while_preparing_a_digest_is_retried_not_failed() {
    let store = MemoryStore::with_jobs(vec![digest_job(1, 7)]);
    store.memory.lock().unwrap().digest_unavailable = true;
    let messenger = MemoryMessenger::default();
    let worker = start(&store, &messenger, policy(2), DigestGate::default());
    until(|| !store.recorded().is_empty()).await;
    worker.stop().await;
    match &store.outcomes_of(1)[..] {
        [Outcome::Retry { error, .. }] => assert!(error.contains("database is locked"), "{error}"),
        other => panic!("expected a retry, got {other:?}"),
    }
    assert!(messenger.sent.lock().unwrap().is_empty());
}

#[tokio::test]
async fn senders_starting_on_a_digest_together_read_and_render_it_once() {
    let store = MemoryStore::with_jobs((1..=40).map(|id| digest_job(id, 7)).collect());
    let messenger = MemoryMessenger::default();
    let worker = start(&store, &messenger, policy(8), DigestGate::default());
    until(|| store.recorded().len() == 40).await;
    worker.stop().await;
    assert_eq!(messenger.sent.lock().unwrap().len(), 40);
    assert_eq!(store.memory.lock().unwrap().digest_loads, 1);
}

#[tokio::test]
async fn a_digest_that_could_not_be_read_is_read_again_by_the_next_sender() {
    let store = MemoryStore::with_jobs(vec![digest_job(1, 7)]);
    store.memory.lock().unwrap().digest_unavailable = true;
    let messenger = MemoryMessenger::default();
    let worker = start(&store, &messenger, policy(2), DigestGate::default());
    until(|| !store.recorded().is_empty()).await;
    {
        let mut memory = store.memory.lock().unwrap();
        memory.digest_unavailable = false;
        memory.queue.push_back(digest_job(2, 7));
    }
    until(|| store.recorded().len() == 2).await;
    worker.stop().await;
    assert_eq!(store.outcomes_of(2), [Outcome::Sent]);
    assert_eq!(store.memory.lock().unwrap().digest_loads, 2);
}

#[tokio::test]
async fn a_panic_while_sending_is_retried_and_the_worker_goes_on() {
    let store = MemoryStore::with_jobs((1..=5).map(|id| digest_job(id, 7)).collect());
    let messenger = MemoryMessenger {
        panic_for: Some("reader3@example.org".into()),
        ..MemoryMessenger::default()
    };
    let worker = start(&store, &messenger, policy(2), DigestGate::default());
    until(|| store.recorded().len() == 5).await;
    worker.stop().await;
    assert!(
        matches!(&store.outcomes_of(3)[..], [Outcome::Retry { error, .. }] if error.contains("a bug while sending"))
    );
    for id in [1, 2, 4, 5] {
        assert_eq!(store.outcomes_of(id), [Outcome::Sent], "delivery {id}");
    }
}

#[tokio::test]
async fn while_outcomes_cannot_be_written_no_more_than_the_window_is_sent() {
    let store = MemoryStore::with_jobs((1..=100).map(|id| digest_job(id, 7)).collect());
    store.memory.lock().unwrap().record_blocked = true;
    let messenger = MemoryMessenger::default();
    let policy = policy(2);
    let window = policy.min_window();
    let worker = start(&store, &messenger, policy, DigestGate::default());
    until(|| messenger.sent.lock().unwrap().len() >= window).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        messenger.sent.lock().unwrap().len(),
        window,
        "a crash now would send at most these {window} twice"
    );
    store.memory.lock().unwrap().record_blocked = false;
    store.unblocked.notify_waiters();
    until(|| store.recorded().len() == 100).await;
    worker.stop().await;
    assert_eq!(messenger.sent.lock().unwrap().len(), 100);
}

#[tokio::test]
async fn mail_of_a_paused_digest_is_handed_back_unsent() {
    let jobs = (1..=10).map(|id| digest_job(id, if id % 2 == 0 { 8 } else { 7 }));
    let store = MemoryStore::with_jobs(jobs.collect());
    let messenger = MemoryMessenger::default();
    let gate = DigestGate::default();
    gate.set(8, DigestStatus::Paused);
    let worker = start(&store, &messenger, policy(2), gate);
    until(|| store.recorded().len() == 10).await;
    worker.stop().await;
    for id in 1..=10 {
        let expected = if id % 2 == 0 {
            Outcome::Released
        } else {
            Outcome::Sent
        };
        assert_eq!(store.outcomes_of(id), [expected], "delivery {id}");
    }
}

#[tokio::test]
async fn a_stopping_worker_finishes_what_is_in_flight_and_hands_back_the_rest() {
    let store = MemoryStore::with_jobs((1..=40).map(|id| digest_job(id, 7)).collect());
    let messenger = MemoryMessenger {
        delay: Duration::from_millis(20),
        ..MemoryMessenger::default()
    };
    let worker = start(&store, &messenger, policy(2), DigestGate::default());
    until(|| messenger.sent.lock().unwrap().len() >= 4).await;
    worker.stop().await;
    let recorded = store.recorded();
    let sent = recorded
        .iter()
        .filter(|f| f.outcome == Outcome::Sent)
        .count();
    let released = recorded
        .iter()
        .filter(|f| f.outcome == Outcome::Released)
        .count();
    let still_queued = store.memory.lock().unwrap().queue.len();
    assert_eq!(sent, messenger.sent.lock().unwrap().len());
    assert!(released > 0, "what was held but not sent goes back");
    assert_eq!(sent + released + still_queued, 40, "nothing is lost");
}

#[test]
fn the_window_is_never_sized_past_the_rate_limit() {
    let mut pace = super::Pace::new();
    // A burst measured at 330 a second under a limit of 300.
    pace.per_second = 330.0;
    let limited = DeliveryPolicy {
        rate_per_second: 300,
        ..policy(2)
    };
    assert_eq!(pace.window(&limited), 12, "40 ms at 300 a second");
    let unlimited = DeliveryPolicy {
        rate_per_second: 0,
        ..policy(2)
    };
    assert_eq!(pace.window(&unlimited), 14, "40 ms at the pace measured");
}
