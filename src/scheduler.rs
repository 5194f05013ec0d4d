//! The service's clock: once a second it starts the scheduled digests whose time has come (or
//! marks them `missed` when found later than `delivery.schedule_grace_minutes`, the service
//! having been down), and runs the automations that are due. It runs beside every delivery
//! worker (`serve` and `worker`); with several instances on one PostgreSQL each looks, and the
//! conditional updates underneath let exactly one of them act on each digest and each run.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};

use crate::configuration::Settings;
use crate::db::Db;
use crate::db::digests::{DueDigest, start_due_digests};

/// How often the clock looks for due work. A scheduled digest starts at most this late.
const TICK: Duration = Duration::from_secs(1);

pub struct Scheduler {
    db: Db,
    settings: Arc<Settings>,
    /// Wakes this process's delivery worker when a digest was queued.
    wake: Arc<Notify>,
}

impl Scheduler {
    pub fn new(db: Db, settings: Arc<Settings>, wake: Arc<Notify>) -> Scheduler {
        Scheduler { db, settings, wake }
    }

    /// Looks for due work every [`TICK`] until `stop` turns true.
    pub async fn run_until_stopped(self, mut stop: watch::Receiver<bool>) -> anyhow::Result<()> {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !*stop.borrow() {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => continue,
            }
            self.start_due_digests().await;
        }
        Ok(())
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
