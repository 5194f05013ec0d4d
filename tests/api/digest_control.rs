//! Staff stop a send: pause, resume and cancel (API and CLI), and a digest that pauses itself
//! when the relay refuses us rather than the readers.

use std::time::{Duration, Instant};

use crate::helpers::{TestApp, spawn_app_with, spawn_app_without_worker};

async fn control(app: &TestApp, token: &str, id: i64, action: &str) -> (u16, serde_json::Value) {
    let response = app
        .admin_post(
            token,
            &format!("/digests/{id}/{action}"),
            serde_json::json!({}),
        )
        .await;
    (response.status().as_u16(), response.json().await.unwrap())
}

fn digests_received(app: &TestApp) -> usize {
    app.smtp
        .all_messages()
        .iter()
        .filter(|m| m.subject() == "Latest research")
        .count()
}

async fn until_received(app: &TestApp, n: usize) {
    let end = Instant::now() + Duration::from_secs(30);
    while digests_received(app) < n {
        assert!(
            Instant::now() < end,
            "only {} arrived",
            digests_received(app)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_paused_send_stops_after_the_mail_in_flight_and_resumes_without_duplicates() {
    // The worker runs in the same process as the API, as `serve` does.
    let app = spawn_app_with(|s| s.signup.welcome_email = false).await;
    app.smtp.take_time(Duration::from_millis(40));
    let token = app.staff_token();
    let readers = app.seed_confirmed("reader", 40);
    let id = app.queued_digest(&token).await;
    until_received(&app, 6).await;

    let (status, paused) = control(&app, &token, id, "pause").await;
    let at_pause = digests_received(&app);
    assert_eq!(
        (status, paused["status"].as_str()),
        (200, Some("paused")),
        "{paused}"
    );
    assert!(
        paused["status_reason"]
            .as_str()
            .unwrap()
            .contains("paused by")
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    let settled = digests_received(&app);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        digests_received(&app),
        settled,
        "nothing more goes out while paused"
    );
    let concurrency = app.settings.delivery.concurrency;
    println!("paused at {at_pause} received; {settled} once the mail in flight was done");
    assert!(
        settled - at_pause <= concurrency,
        "{} mails arrived after the pause answered; at most the {concurrency} in flight may",
        settled - at_pause
    );
    // Pausing again is harmless; resuming a sending digest is not possible.
    assert_eq!(control(&app, &token, id, "pause").await.0, 200);

    let (status, resumed) = control(&app, &token, id, "resume").await;
    assert_eq!((status, resumed["status"].as_str()), (200, Some("sending")));
    let done = app.wait_until_sent(&token, id).await;
    assert_eq!(done["sent"], 40, "{done}");
    let copies = app.copies_by_recipient();
    for reader in &readers {
        assert_eq!(copies.get(reader), Some(&1), "{reader}");
    }
    let (status, body) = control(&app, &token, id, "resume").await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("is sent; only a paused digest"),
        "{body}"
    );
}

#[tokio::test]
async fn a_cancelled_send_skips_everything_not_yet_sent() {
    let app = spawn_app_with(|s| s.signup.welcome_email = false).await;
    app.smtp.take_time(Duration::from_millis(40));
    let token = app.staff_token();
    app.seed_confirmed("reader", 40);
    let id = app.queued_digest(&token).await;
    until_received(&app, 4).await;
    let (status, cancelled) = control(&app, &token, id, "cancel").await;
    assert_eq!(
        (status, cancelled["status"].as_str()),
        (200, Some("cancelled")),
        "{cancelled}"
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    let progress: serde_json::Value = app.admin_json(&token, &format!("/digests/{id}")).await;
    let (sent, skipped) = (
        progress["sent"].as_i64().unwrap(),
        progress["skipped"].as_i64().unwrap(),
    );
    assert_eq!(progress["queued"], 0, "{progress}");
    assert_eq!(sent + skipped, 40, "{progress}");
    assert_eq!(sent as usize, digests_received(&app));
    assert!(progress["finished_at"].is_string());
    // Nothing can bring it back.
    assert_eq!(control(&app, &token, id, "resume").await.0, 409);
    assert_eq!(control(&app, &token, id, "pause").await.0, 409);
    assert_eq!(control(&app, &token, 999, "pause").await.0, 404);
}

#[tokio::test]
async fn a_digest_pauses_itself_when_the_relay_refuses_us_and_resume_tries_those_again() {
    // delivery.pause_after_failures keeps its default (50).
    let app = spawn_app_without_worker(|_| {}).await;
    app.smtp
        .answer_every_rcpt(Some((554, "5.7.1 Relay access denied")));
    let token = app.staff_token();
    let readers = app.seed_confirmed("reader", 300);
    let id = app.queued_digest(&token).await;
    let worker = app.worker(|_| {});
    let end = Instant::now() + Duration::from_secs(30);
    let paused = loop {
        let progress: serde_json::Value = app.admin_json(&token, &format!("/digests/{id}")).await;
        if progress["status"] == "paused" && progress["queued"].as_i64() > Some(0) {
            tokio::time::sleep(Duration::from_millis(300)).await;
            break progress;
        }
        assert!(Instant::now() < end, "did not pause: {progress}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let reason = paused["status_reason"].as_str().unwrap();
    assert!(
        reason.contains("paused automatically") && reason.contains("5.7.1"),
        "{reason}"
    );
    // It stopped at the 50th refusal; what was already handed to SMTP then (the window) ended
    // too, and the rest of the list waits.
    let failed = paused["failed"].as_i64().unwrap();
    assert!((50..100).contains(&failed), "{paused}");
    assert!(paused["queued"].as_i64().unwrap() >= 200, "{paused}");
    assert_eq!(paused["failures"]["sender"], failed);
    for reader in &readers {
        assert_eq!(
            app.subscriber_status(reader).as_deref(),
            Some("confirmed"),
            "{reader}"
        );
    }

    // The relay is fixed; staff resume; the refused mails are tried again.
    app.smtp.answer_every_rcpt(None);
    assert_eq!(control(&app, &token, id, "resume").await.0, 200);
    let done = app.wait_until_sent(&token, id).await;
    worker.stop().await;
    assert_eq!(
        (done["sent"].as_i64(), done["failed"].as_i64()),
        (Some(300), Some(0)),
        "{done}"
    );
    let copies = app.copies_by_recipient();
    for reader in &readers {
        assert_eq!(copies.get(reader), Some(&1), "{reader}");
    }
}

#[tokio::test]
async fn staff_pause_resume_and_cancel_from_the_command_line() {
    let app = spawn_app_without_worker(|_| {}).await;
    let token = app.staff_token();
    app.seed_confirmed("reader", 3);
    let id = app.queued_digest(&token).await.to_string();
    let cli = |args: &[&str]| app.command(args).output().unwrap();
    let out = |o: &std::process::Output| String::from_utf8_lossy(&o.stdout).to_string();

    let paused = cli(&["digest", "pause", &id]);
    assert!(paused.status.success());
    assert!(
        out(&paused).contains(&format!("digest {id} paused")),
        "{}",
        out(&paused)
    );
    let status = out(&cli(&["digest", "status", &id]));
    assert!(
        status.contains("(paused)") && status.contains("paused from the command line"),
        "{status}"
    );
    let resumed = cli(&["digest", "resume", &id]);
    assert!(out(&resumed).contains("sending again"), "{}", out(&resumed));
    let cancelled = cli(&["digest", "cancel", &id]);
    assert!(out(&cancelled).contains("cancelled"), "{}", out(&cancelled));
    let again = cli(&["digest", "resume", &id]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&again.stderr)
            .contains("is cancelled: only a paused digest can be resumed"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let progress: serde_json::Value = app.admin_json(&token, &format!("/digests/{id}")).await;
    assert_eq!(
        (progress["skipped"].as_i64(), progress["sent"].as_i64()),
        (Some(3), Some(0))
    );
}
