//! Digests sent later: staff schedule one, the worker's clock starts it at its time; one whose
//! time passed while the service was down longer than `delivery.schedule_grace_minutes` (60 by
//! default) is marked `missed`, not sent late. Several instances start each one once.

use std::time::{Duration, Instant};

use chrono::{NaiveDateTime, Utc};
use diesel::prelude::*;
use newsletter::db::digests::{DueDigest, start_due_digests};
use newsletter::db::schema::{deliveries, digests};

use crate::helpers::{TestApp, spawn_app, spawn_app_without_worker};

async fn schedule(app: &TestApp, token: &str, id: i64, at: &str) -> (u16, serde_json::Value) {
    let body = serde_json::json!({ "at": at });
    let response = app
        .admin_post(token, &format!("/digests/{id}/schedule"), body)
        .await;
    (response.status().as_u16(), response.json().await.unwrap())
}

fn rfc3339_in(seconds: i64) -> String {
    (Utc::now() + chrono::Duration::seconds(seconds)).to_rfc3339()
}

/// Moves a scheduled digest's time, as if it had been scheduled for then.
fn set_due(app: &TestApp, id: i64, at: NaiveDateTime) {
    app.query(|conn| {
        diesel::update(digests::table.find(id))
            .set(digests::scheduled_at.eq(at))
            .execute(conn)
    });
}

#[tokio::test]
async fn a_scheduled_digest_goes_out_at_its_time_and_not_before() {
    let app = spawn_app().await;
    app.seed_confirmed("reader", 3);
    let token = app.staff_token();
    let id = app.draft_digest(&token).await;

    let (status, body) = schedule(&app, &token, id, &rfc3339_in(3)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "scheduled");
    assert!(body["scheduled_at"].is_string(), "{body}");
    let scheduled_at = Instant::now();

    let sent = app.wait_until_sent(&token, id).await;
    assert_eq!(sent["sent"], 3, "{sent}");
    assert!(
        scheduled_at.elapsed() >= Duration::from_secs(2),
        "it went out before its time"
    );
    let (started, due): (Option<NaiveDateTime>, Option<NaiveDateTime>) = app.query(|conn| {
        digests::table
            .find(id)
            .select((digests::started_at, digests::scheduled_at))
            .first(conn)
    });
    assert!(started.unwrap() >= due.unwrap());
    assert!(started.unwrap() - due.unwrap() < chrono::Duration::seconds(5));
    assert_eq!(app.smtp.wait_for("reader0@example.org", 1).await.len(), 1);
}

#[tokio::test]
async fn a_schedule_in_the_past_or_of_a_sent_digest_is_refused_and_cancel_takes_it_back() {
    let app = spawn_app().await;
    let token = app.staff_token();
    let id = app.draft_digest(&token).await;
    for (at, expected) in [
        (rfc3339_in(-60), "in the past"),
        ("next monday".to_string(), "RFC 3339"),
    ] {
        let (status, body) = schedule(&app, &token, id, &at).await;
        assert_eq!(status, 422, "{body}");
        assert!(body["error"].as_str().unwrap().contains(expected), "{body}");
    }
    let (status, _) = schedule(&app, &token, 999, &rfc3339_in(3600)).await;
    assert_eq!(status, 404);

    // Scheduled again, it takes the new time; cancelled, it never goes out.
    schedule(&app, &token, id, &rfc3339_in(3600)).await;
    let (status, body) = schedule(&app, &token, id, &rfc3339_in(7200)).await;
    assert_eq!(status, 200, "{body}");
    let response = app
        .admin_post(
            &token,
            &format!("/digests/{id}/cancel"),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(response.status().as_u16(), 200);
    let (status, body) = schedule(&app, &token, id, &rfc3339_in(3600)).await;
    assert_eq!(status, 409, "{body}");

    // The command line takes the clinic's local time.
    let other = app.draft_digest(&token).await;
    let output = app
        .command(&[
            "digest",
            "schedule",
            &other.to_string(),
            "--at",
            "2099-01-05 09:00",
        ])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(said.contains("scheduled for 2099-01-05 09:00"), "{said}");
    let status = app
        .command(&["digest", "status", &other.to_string()])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&status.stdout).contains("scheduled for 2099-01-05 09:00"));
}

#[tokio::test]
async fn a_digest_found_more_than_an_hour_late_is_missed_and_one_within_the_hour_goes_out_late() {
    // No worker: the service is "down" while the times pass.
    let app = spawn_app_without_worker(|_| {}).await;
    assert_eq!(
        app.settings.delivery.schedule_grace_minutes, 60,
        "the default"
    );
    app.seed_confirmed("reader", 2);
    let token = app.staff_token();
    let too_late = app.draft_digest(&token).await;
    let late = app.draft_digest(&token).await;
    for id in [too_late, late] {
        let (status, body) = schedule(&app, &token, id, &rfc3339_in(3600)).await;
        assert_eq!(status, 200, "{body}");
    }
    let now = Utc::now().naive_utc();
    set_due(&app, too_late, now - chrono::Duration::minutes(61));
    set_due(&app, late, now - chrono::Duration::minutes(59));

    // The service comes back.
    let worker = app.worker(|_| {});
    let scheduler = newsletter::scheduler::Scheduler::new(
        &newsletter::startup::build_parts(&app.settings).unwrap(),
        std::sync::Arc::new(app.settings.clone()),
        Default::default(),
    );
    scheduler.start_due_digests().await;

    let missed = app
        .admin_json(&token, &format!("/digests/{too_late}"))
        .await;
    assert_eq!(missed["status"], "missed", "{missed}");
    let reason = missed["status_reason"].as_str().unwrap();
    assert!(reason.contains("schedule_grace_minutes is 60"), "{reason}");
    assert_eq!(missed["recipients"], 0);
    let sent = app.wait_until_sent(&token, late).await;
    assert_eq!(sent["sent"], 2, "{sent}");
    assert_eq!(app.smtp.wait_for("reader0@example.org", 1).await.len(), 1);

    // Staff can still send the missed one, or schedule it again.
    let (status, body) = schedule(&app, &token, too_late, &rfc3339_in(3600)).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app.send_digest(&token, too_late).await;
    assert_eq!(status, 202, "{body}");
    app.wait_until_sent(&token, too_late).await;
    worker.stop().await;
}

#[tokio::test]
async fn two_instances_looking_at_once_start_each_scheduled_digest_once() {
    let app = spawn_app_without_worker(|_| {}).await;
    app.seed_confirmed("reader", 5);
    let token = app.staff_token();
    let mut ids = Vec::new();
    for _ in 0..8 {
        let id = app.draft_digest(&token).await;
        schedule(&app, &token, id, &rfc3339_in(3600)).await;
        set_due(
            &app,
            id,
            Utc::now().naive_utc() - chrono::Duration::seconds(1),
        );
        ids.push(id);
    }
    // Two instances: each its own pool, looking at the same moment, again and again.
    let looking: Vec<_> = (0..2)
        .map(|_| {
            let parts = newsletter::startup::build_parts(&app.settings).unwrap();
            std::thread::spawn(move || {
                let mut started = Vec::new();
                for _ in 0..20 {
                    let mut conn = parts.db.get().unwrap();
                    for due in
                        start_due_digests(&mut conn, chrono::Duration::minutes(60), None).unwrap()
                    {
                        let DueDigest::Started { id, queued } = due else {
                            panic!("{due:?}")
                        };
                        started.push((id, queued));
                    }
                }
                started
            })
        })
        .collect();
    let mut started: Vec<(i64, i64)> = looking
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    started.sort();
    let expected: Vec<(i64, i64)> = ids.iter().map(|id| (*id, 5)).collect();
    assert_eq!(started, expected, "each digest started once, for 5 readers");
    for id in ids {
        let queued: i64 = app.query(|conn| {
            deliveries::table
                .filter(deliveries::digest_id.eq(id))
                .count()
                .get_result(conn)
        });
        assert_eq!(queued, 5);
    }
}
