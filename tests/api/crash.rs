//! The worker process dies by SIGKILL part-way through a digest; a new one finishes the send,
//! with the default lease, batch and concurrency a user runs.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use newsletter::db::schema::deliveries::dsl as d;

use crate::helpers::{TestApp, spawn_app_without_worker};

/// A worker process with the default delivery settings; only the rate is capped, so that the
/// kill lands part-way through the digest.
fn worker_process(app: &TestApp) -> Child {
    app.command(&["worker"])
        .env("NEWSLETTER__DELIVERY__RATE_PER_SECOND", "500")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn count(app: &TestApp, digest_id: i64, status: &'static str) -> i64 {
    app.query(move |c| {
        d::deliveries
            .filter(d::digest_id.eq(digest_id))
            .filter(d::status.eq(status))
            .count()
            .get_result(c)
    })
}

#[tokio::test]
async fn a_worker_killed_mid_digest_is_restarted_and_finishes_within_a_minute() {
    let app = spawn_app_without_worker(|_| {}).await;
    let token = app.staff_token();
    let readers = app.seed_confirmed("reader", 2000);
    let id = app.queued_digest(&token).await;
    let defaults = newsletter::configuration::Settings::load(None).unwrap();
    // The window: 2 x concurrency, or what is sent in 40 ms at 500 a second, if more.
    let window = (2 * defaults.delivery.concurrency).max(500 * 40 / 1000);

    let mut first = worker_process(&app);
    let end = Instant::now() + Duration::from_secs(60);
    while count(&app, id, "sent") < 400 && Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.kill().unwrap(); // SIGKILL: no chance to finish or record anything
    first.wait().unwrap();
    let held = count(&app, id, "sending");
    let sent_before = count(&app, id, "sent");
    assert!(sent_before < 2000, "killed part-way ({sent_before} sent)");

    let restarted = Instant::now();
    let mut second = worker_process(&app);
    let done = app.wait_until_sent(&token, id).await;
    let took = restarted.elapsed();
    second.kill().unwrap();
    second.wait().unwrap();
    assert_eq!(done["status"], "sent", "{done}");
    assert_eq!(done["sent"], 2000);
    assert!(
        took < Duration::from_secs(60),
        "the restarted worker needed {took:?} to finish"
    );

    let copies = app.copies_by_recipient();
    let missed = readers.iter().filter(|r| !copies.contains_key(*r)).count();
    let twice: Vec<&String> = readers
        .iter()
        .filter(|r| copies.get(*r).is_some_and(|n| *n > 1))
        .collect();
    println!(
        "SIGKILL after {sent_before} sent: {held} rows held, {} readers got a second copy, \
         {missed} missed; the restarted worker finished in {took:?}",
        twice.len()
    );
    assert_eq!(missed, 0);
    assert!(
        twice.len() <= window,
        "{} duplicates; at most the window ({window}) may go out twice",
        twice.len()
    );
    // Both copies of a repeated mail carry a link that works.
    for reader in twice {
        for mail in app.smtp.messages_to(reader) {
            let link = mail.link("/unsubscribe?token=");
            assert_eq!(app.get(&link).await.status().as_u16(), 200, "{link}");
        }
    }
}
