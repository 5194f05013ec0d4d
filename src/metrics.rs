//! `GET /metrics` in the Prometheus text format (when `metrics.enabled`). Counters of what this
//! process did (signups, confirmations, unsubscribes, deliveries by kind and outcome) and how
//! long SMTP took, kept in memory: Prometheus adds up the instances. What the database knows for
//! all instances (queue depth, the oldest due mail, bounces and complaints by class, which
//! `newsletter inbound process` also records from outside `serve`) is read at each scrape.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Static words, so counting a delivery allocates nothing.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    kind: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassLabels {
    class: String,
}

/// This process's counters.
pub struct Metrics {
    signups: Counter,
    confirmations: Counter,
    unsubscribes: Counter,
    deliveries: Family<DeliveryLabels, Counter>,
    smtp_seconds: Histogram,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            signups: Counter::default(),
            confirmations: Counter::default(),
            unsubscribes: Counter::default(),
            deliveries: Family::default(),
            // 1 ms to about 33 s.
            smtp_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
        }
    }
}

/// What the database says at a scrape, for every instance.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub queue_depth: i64,
    pub oldest_due_seconds: i64,
    /// Reports of mail that came back, by class (`hard`, `soft`, `about-us`, `complaint`...).
    pub reports: Vec<(String, i64)>,
}

impl Metrics {
    /// A signup that queued a confirmation.
    pub fn signed_up(&self) {
        self.signups.inc();
    }

    pub fn confirmed(&self) {
        self.confirmations.inc();
    }

    pub fn unsubscribed(&self) {
        self.unsubscribes.inc();
    }

    /// One attempt of a delivery, its outcome (`sent`, `retry`, `failed`) and how long it took.
    pub fn delivered(&self, kind: &'static str, outcome: &'static str, took: Duration) {
        self.deliveries
            .get_or_create(&DeliveryLabels { kind, outcome })
            .inc();
        self.smtp_seconds.observe(took.as_secs_f64());
    }

    /// A delivery put off unsent because its domain asked us to slow down.
    pub fn deferred(&self, kind: &'static str) {
        self.deliveries
            .get_or_create(&DeliveryLabels {
                kind,
                outcome: "deferred",
            })
            .inc();
    }

    /// The text Prometheus scrapes: this process's counters and the database's snapshot.
    pub fn render(&self, snapshot: &Snapshot) -> anyhow::Result<String> {
        let mut registry = Registry::with_prefix("newsletter");
        registry.register(
            "signups",
            "Signups that queued a confirmation",
            self.signups.clone(),
        );
        registry.register(
            "confirmations",
            "Subscriptions confirmed",
            self.confirmations.clone(),
        );
        registry.register(
            "unsubscribes",
            "Unsubscribes by link or one-click",
            self.unsubscribes.clone(),
        );
        registry.register(
            "deliveries",
            "Delivery attempts by kind and outcome (sent, retry, failed), and mail put off unsent for its domain's pace (deferred)",
            self.deliveries.clone(),
        );
        registry.register(
            "smtp_seconds",
            "How long sending one mail took: rendering its copy and the SMTP transaction",
            self.smtp_seconds.clone(),
        );
        let depth = Gauge::<i64>::default();
        depth.set(snapshot.queue_depth);
        registry.register("queue_depth", "Deliveries waiting to be sent", depth);
        let oldest = Gauge::<i64>::default();
        oldest.set(snapshot.oldest_due_seconds);
        registry.register(
            "queue_oldest_due_seconds",
            "How long the oldest due delivery has waited",
            oldest,
        );
        let reports = Family::<ClassLabels, Gauge>::default();
        for (class, count) in &snapshot.reports {
            reports
                .get_or_create(&ClassLabels {
                    class: class.clone(),
                })
                .set(*count);
        }
        registry.register(
            "inbound_reports",
            "Bounces, complaints and unsubscribe mails read, by class",
            reports,
        );
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry)?;
        Ok(text)
    }
}
