//! The worker process dies by SIGKILL part-way through a digest; a new one finishes the send.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use newsletter::db::schema::deliveries::dsl as d;

use crate::helpers::{TestApp, spawn_app_without_worker};

fn worker_process(app: &TestApp) -> Child {
    app.command(&["worker"])
        .env("NEWSLETTER__DELIVERY__CONCURRENCY", "4")
        .env("NEWSLETTER__DELIVERY__RATE_PER_SECOND", "500")
        .env("NEWSLETTER__DELIVERY__BATCH_SIZE", "50")
        .env("NEWSLETTER__DELIVERY__LEASE_SECONDS", "2")
        .env("NEWSLETTER__DELIVERY__POLL_INTERVAL_MS", "50")
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
    let id = app.queued_digest(&token).await;

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

    let copies = app.copies_by_recipient();
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
