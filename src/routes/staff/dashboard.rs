//! The dashboard: the list by status, signups and unsubscribes over 30 days, the last digests,
//! and a warning when no worker is sending.

use std::collections::BTreeMap;

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;

use super::{AdminError, Signed, render, thousands};
use crate::db::dashboard::{
    Day, DigestSummary, daily_counts, recent_digests, status_counts, worker_last_seen,
};
use crate::startup::AppState;

/// Days in the chart.
const DAYS: i64 = 30;
/// A worker that has not said it is alive for this long is taken for gone.
const WORKER_SILENT_SECONDS: i64 = 60;

#[derive(Serialize)]
struct DashboardPage {
    counts: BTreeMap<String, String>,
    total: String,
    chart: Chart,
    days: Vec<DayRow>,
    digests: Vec<DigestRow>,
    worker_missing: bool,
    worker_last_seen: Option<String>,
}

#[derive(Serialize)]
struct DayRow {
    date: String,
    signups: i64,
    unsubscribes: i64,
}

#[derive(Serialize)]
pub(super) struct DigestRow {
    #[serde(flatten)]
    summary: DigestSummary,
    sent_text: String,
    failed_text: String,
    skipped_text: String,
    recipients_text: String,
}

impl From<DigestSummary> for DigestRow {
    fn from(summary: DigestSummary) -> DigestRow {
        DigestRow {
            sent_text: thousands(summary.sent),
            failed_text: thousands(summary.failed),
            skipped_text: thousands(summary.skipped),
            recipients_text: thousands(summary.digest.recipients),
            summary,
        }
    }
}

/// The 30-day chart as SVG geometry: a pair of bars per day, signups up, unsubscribes beside.
#[derive(Serialize)]
struct Chart {
    width: u32,
    height: u32,
    max: i64,
    bar_width: f64,
    bars: Vec<Bar>,
    first_label: String,
    last_label: String,
    signups: i64,
    unsubscribes: i64,
}

#[derive(Serialize)]
struct Bar {
    x: f64,
    signup_y: f64,
    signup_h: f64,
    unsub_x: f64,
    unsub_y: f64,
    unsub_h: f64,
    label: String,
}

fn chart(days: &[Day]) -> Chart {
    let (width, height, top) = (600u32, 150u32, 10.0);
    let plot = f64::from(height) - top;
    let max = days
        .iter()
        .map(|d| d.signups.max(d.unsubscribes))
        .max()
        .unwrap_or(0)
        .max(1);
    let slot = f64::from(width) / days.len().max(1) as f64;
    let bar = (slot * 0.4).max(1.0);
    let bars = days
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let h = |n: i64| (n as f64 / max as f64 * plot).max(if n > 0 { 1.0 } else { 0.0 });
            let x = i as f64 * slot + slot * 0.1;
            Bar {
                x,
                signup_h: h(d.signups),
                signup_y: f64::from(height) - h(d.signups),
                unsub_x: x + bar,
                unsub_h: h(d.unsubscribes),
                unsub_y: f64::from(height) - h(d.unsubscribes),
                label: format!(
                    "{}: {} signups, {} unsubscribes",
                    d.date.format("%-d %b"),
                    d.signups,
                    d.unsubscribes
                ),
            }
        })
        .collect();
    Chart {
        width,
        height,
        max,
        bar_width: bar,
        bars,
        first_label: days
            .first()
            .map(|d| d.date.format("%-d %b").to_string())
            .unwrap_or_default(),
        last_label: days
            .last()
            .map(|d| d.date.format("%-d %b").to_string())
            .unwrap_or_default(),
        signups: days.iter().map(|d| d.signups).sum(),
        unsubscribes: days.iter().map(|d| d.unsubscribes).sum(),
    }
}

pub async fn page(
    signed: Signed,
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    let (counts, days, digests, seen) = state
        .db
        .run(|conn| {
            Ok((
                status_counts(conn)?,
                daily_counts(conn, DAYS)?,
                recent_digests(conn, 5)?,
                worker_last_seen(conn)?,
            ))
        })
        .await?;
    let now = crate::db::now();
    let worker_missing = seen.is_none_or(|seen| (now - seen).num_seconds() > WORKER_SILENT_SECONDS);
    let page = DashboardPage {
        total: thousands(counts.values().sum()),
        counts: counts.into_iter().map(|(k, v)| (k, thousands(v))).collect(),
        chart: chart(&days),
        days: days
            .iter()
            .rev()
            .map(|d| DayRow {
                date: d.date.format("%a %-d %b").to_string(),
                signups: d.signups,
                unsubscribes: d.unsubscribes,
            })
            .collect(),
        digests: digests.into_iter().map(DigestRow::from).collect(),
        worker_missing,
        worker_last_seen: seen.map(crate::db::staff_time),
    };
    render(
        &state,
        Some(&signed),
        &request,
        "dashboard.html",
        "dashboard",
        "Dashboard",
        page,
    )
}
