//! The worker process dies by SIGKILL part-way through a digest; a new one finishes the send.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use newsletter::db::schema::deliveries::dsl as d;
use secrecy::ExposeSecret;

use crate::helpers::{FEED, TestApp, serve_feed, spawn_app_without_worker};

fn worker_process(app: &TestApp) -> Child {
    let s = &app.settings;
    Command::new(env!("CARGO_BIN_EXE_newsletter"))
        .arg("worker")
        .env("NEWSLETTER__DATABASE__URL", s.database.url.expose_secret())
        .env("NEWSLETTER__SERVER__BASE_URL", &s.server.base_url)
        .env("NEWSLETTER__MAIL__TRANSPORT", "smtp")
        .env("NEWSLETTER__MAIL__SMTP__HOST", "127.0.0.1")
        .env("NEWSLETTER__MAIL__SMTP__PORT", s.mail.smtp.port.to_string())
        .env("NEWSLETTER__MAIL__SMTP__TLS", "none")
        .env("NEWSLETTER__DELIVERY__CONCURRENCY", "4")
        .env("NEWSLETTER__DELIVERY__RATE_PER_SECOND", "500")
        .env("NEWSLETTER__DELIVERY__BATCH_SIZE", "50")
        .env("NEWSLETTER__DELIVERY__LEASE_SECONDS", "2")
        .env("NEWSLETTER__DELIVERY__POLL_INTERVAL_MS", "50")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn sent(app: &TestApp, digest_id: i64) -> i64 {
    app.query(|c| {
        d::deliveries
            .filter(d::digest_id.eq(digest_id))
            .filter(d::status.eq("sent"))
            .count()
            .get_result(c)
    })
}

#[tokio::test]
async fn a_worker_killed_mid_digest_is_restarted_and_every_reader_gets_it() {
    let app = spawn_app_without_worker(|_| {}).await;
    let token = app.staff_token();
    let readers = app.seed_confirmed("reader", 2000);
    app.admin_post(
        &token,
        "/feeds/import",
        serde_json::json!({ "url": serve_feed(FEED) }),
    )
    .await;
    let created: serde_json::Value = app
        .admin_post(
            &token,
            "/digests",
            serde_json::json!({"subject": "Latest research"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let id = created["id"].as_i64().unwrap();
    app.admin_post(
        &token,
        &format!("/digests/{id}/send"),
        serde_json::json!({}),
    )
    .await;

    let mut first = worker_process(&app);
    let end = Instant::now() + Duration::from_secs(60);
    while sent(&app, id) < 400 && Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.kill().unwrap(); // SIGKILL: no chance to finish or record anything
    first.wait().unwrap();
    let in_flight: i64 = app.query(|c| {
        d::deliveries
            .filter(d::digest_id.eq(id))
            .filter(d::status.eq("sending"))
            .count()
            .get_result(c)
    });
    let sent_before = sent(&app, id);
    assert!(sent_before < 2000, "killed part-way ({sent_before} sent)");

    let mut second = worker_process(&app);
    let done = app.wait_until_sent(&token, id).await;
    second.kill().unwrap();
    second.wait().unwrap();
    assert_eq!(done["status"], "sent", "{done}");
    assert_eq!(done["sent"], 2000);

    let mut copies: HashMap<String, usize> = HashMap::new();
    for mail in app.smtp.all_messages() {
        for rcpt in mail.rcpts {
            *copies.entry(rcpt).or_default() += 1;
        }
    }
    let missed = readers.iter().filter(|r| !copies.contains_key(*r)).count();
    let twice = readers
        .iter()
        .filter(|r| copies.get(*r).is_some_and(|n| *n > 1))
        .count();
    println!(
        "SIGKILL after {sent_before} sent: {in_flight} in flight, {twice} readers got a second copy, {missed} missed"
    );
    assert_eq!(missed, 0);
    assert!(
        twice as i64 <= in_flight,
        "{twice} duplicates but only {in_flight} were in flight"
    );
}
