//! The service's clock: once a second it starts the scheduled digests whose time has come (or
//! marks them `missed` when found later than `delivery.schedule_grace_minutes`, the service
//! having been down), and runs the automations that are due. It runs beside every delivery
//! worker (`serve` and `worker`); with several instances on one PostgreSQL each looks, and the
//! conditional updates underneath let exactly one of them act on each digest and each run.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};

use crate::automations::{RunOutcome, Runner, Schedule};
use crate::configuration::Settings;
use crate::db::automations::{Automation, RunRecord, record_run, take_due_automations};
use crate::db::digests::{DueDigest, start_due_digests};
use crate::db::{Db, now};
use crate::startup::Parts;

/// How often the clock looks for due work. A scheduled digest starts at most this late.
const TICK: Duration = Duration::from_secs(1);

pub struct Scheduler {
    db: Db,
    settings: Arc<Settings>,
    /// Wakes this process's delivery worker when a digest was queued.
    wake: Arc<Notify>,
    runner: Runner,
}

impl Scheduler {
    pub fn new(parts: &Parts, settings: Arc<Settings>, wake: Arc<Notify>) -> Scheduler {
        let runner = Runner::new(
            parts.db.clone(),
            settings.clone(),
            parts.composer.clone(),
            parts.mailer.clone(),
            wake.clone(),
        );
        Scheduler {
            db: parts.db.clone(),
            settings,
            wake,
            runner,
        }
    }

    /// Looks for due work every [`TICK`] until `stop` turns true.
    pub async fn run_until_stopped(self, mut stop: watch::Receiver<bool>) -> anyhow::Result<()> {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let this = Arc::new(self);
        // Automations fetch feeds, which can take seconds: they run beside the clock, one
        // round at a time, so a slow feed never holds up a scheduled digest.
        let mut automations: Option<tokio::task::JoinHandle<()>> = None;
        while !*stop.borrow() {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => continue,
            }
            this.start_due_digests().await;
            if automations.as_ref().is_none_or(|round| round.is_finished()) {
                let this = this.clone();
                automations = Some(tokio::spawn(async move {
                    this.run_due_automations().await;
                }));
            }
        }
        if let Some(round) = automations {
            let _ = round.await;
        }
        Ok(())
    }

    /// Runs the automations that are due, each once however many instances look (see
    /// [`take_due_automations`]). A run found more than `delivery.schedule_grace_minutes`
    /// late (the service was down) is skipped, as a scheduled digest would be missed: a send
    /// at an hour nobody chose helps nobody; the next one comes on time.
    pub async fn run_due_automations(&self) -> Vec<(i64, RunOutcome)> {
        let zone = self.settings.site.tz();
        let grace =
            chrono::Duration::minutes(i64::from(self.settings.delivery.schedule_grace_minutes));
        let taken = self
            .db
            .run(move |conn| {
                Ok(take_due_automations(conn, |automation| {
                    following_run(automation, zone)
                })?)
            })
            .await;
        let taken = match taken {
            Ok(taken) => taken,
            Err(e) => {
                tracing::warn!(
                    error = format!("{e:#}"),
                    "could not look for due automations"
                );
                return Vec::new();
            }
        };
        let mut outcomes = Vec::new();
        for (automation, due) in taken {
            if now() - due > grace {
                self.skip_late_run(&automation, due, grace).await;
                continue;
            }
            match self.runner.run(&automation).await {
                Ok(outcome) => outcomes.push((automation.id, outcome)),
                Err(e) => tracing::warn!(
                    automation = automation.id,
                    error = format!("{e:#}"),
                    "automation run failed"
                ),
            }
        }
        outcomes
    }

    async fn skip_late_run(
        &self,
        automation: &Automation,
        due: chrono::NaiveDateTime,
        grace: chrono::Duration,
    ) {
        let record = RunRecord {
            outcome: format!(
                "skipped: the run due at {} UTC came while no worker was running, more than \
                 delivery.schedule_grace_minutes ({}) ago; the next one is on time",
                due.format("%Y-%m-%d %H:%M"),
                grace.num_minutes()
            ),
            digest_id: automation.last_digest_id,
            etag: automation.etag.clone(),
            last_modified: automation.last_modified.clone(),
        };
        tracing::warn!(automation = automation.id, due = %due, "automation run skipped: too late");
        let id = automation.id;
        if let Err(e) = self
            .db
            .run(move |conn| Ok(record_run(conn, id, &record)?))
            .await
        {
            tracing::warn!(error = format!("{e:#}"), "could not record a skipped run");
        }
    }

    /// Starts (or marks missed) the scheduled digests whose time has come.
    pub async fn start_due_digests(&self) {
        let grace =
            chrono::Duration::minutes(i64::from(self.settings.delivery.schedule_grace_minutes));
        let refusal = self.settings.site.not_ready_for_digests();
        let moved = self
            .db
            .run(move |conn| start_due_digests(conn, grace, refusal.as_deref()))
            .await;
        match moved {
            Ok(moved) => {
                for due in moved {
                    match due {
                        DueDigest::Started { id, queued } => {
                            tracing::info!(digest = id, queued, "scheduled digest started");
                            self.wake.notify_one();
                        }
                        DueDigest::Missed { id, due, why } => tracing::warn!(
                            digest = id,
                            due = %due.format("%Y-%m-%d %H:%M UTC"),
                            why,
                            "scheduled digest missed its time and was not sent"
                        ),
                    }
                }
            }
            Err(e) => tracing::warn!(
                error = format!("{e:#}"),
                "could not start the scheduled digests; trying again"
            ),
        }
    }
}

/// When an automation runs next after now; a day on should its schedule, checked when it was
/// made, no longer parse.
pub fn following_run(automation: &Automation, zone: chrono_tz::Tz) -> chrono::NaiveDateTime {
    Schedule::parse(&automation.schedule)
        .ok()
        .and_then(|schedule| schedule.next_after(now(), zone))
        .unwrap_or_else(|| now() + chrono::Duration::days(1))
}
