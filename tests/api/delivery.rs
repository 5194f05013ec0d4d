//! The queue under stress: interrupted workers, several workers, a flaky SMTP server.

use std::time::Duration;

use crate::helpers::spawn_app_without_worker;

#[tokio::test]
async fn a_send_stopped_mid_digest_resumes_and_misses_nobody() {
    let app = spawn_app_without_worker(|_| {}).await;
    let token = app.staff_token();
    let readers = app.seed_confirmed("reader", 60);
    let id = app.queued_digest(&token).await;

    let first = app.worker(|s| {
        s.delivery.rate_per_second = 10;
        s.delivery.batch_size = 10;
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    first.stop().await;
    let mid: serde_json::Value = app.admin_json(&token, &format!("/digests/{id}")).await;
    assert_eq!(mid["status"], "sending", "stopped part-way: {mid}");
    assert!(mid["sent"].as_i64().unwrap() > 0);

    let second = app.worker(|_| {});
    let done = app.wait_until_sent(&token, id).await;
    second.stop().await;
    assert_eq!(done["sent"], 60, "{done}");
    let copies = app.copies_by_recipient();
    for reader in &readers {
        assert_eq!(
            copies.get(reader),
            Some(&1),
            "{reader}: a stopped worker finishes what it holds"
        );
    }
}

#[tokio::test]
async fn a_worker_killed_mid_send_leaves_leases_that_another_worker_takes_over() {
    let app = spawn_app_without_worker(|_| {}).await;
    let token = app.staff_token();
    let readers = app.seed_confirmed("reader", 60);
    let id = app.queued_digest(&token).await;

    let first = app.worker(|s| {
        s.delivery.rate_per_second = 10;
        s.delivery.batch_size = 10;
        s.delivery.lease_seconds = 1;
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    first.kill();
    let second = app.worker(|s| s.delivery.lease_seconds = 1);
    let done = app.wait_until_sent(&token, id).await;
    second.stop().await;
    assert_eq!(done["status"], "sent", "{done}");
    assert_eq!(done["sent"], 60);
    let copies = app.copies_by_recipient();
    let twice = readers
        .iter()
        .filter(|r| copies.get(*r) == Some(&2))
        .count();
    for reader in &readers {
        assert!(
            copies.get(reader).is_some_and(|n| *n >= 1),
            "{reader} was missed"
        );
    }
    // Only mail that was in flight (claimed, at most one batch of 10) can go out twice.
    assert!(twice <= 10, "{twice} readers got two copies");
    println!("killed mid-send: {twice} of 60 readers got a second copy");
}

#[tokio::test]
async fn two_workers_share_one_digest_and_each_reader_gets_exactly_one_copy() {
    let app = spawn_app_without_worker(|_| {}).await;
    let token = app.staff_token();
    let readers = app.seed_confirmed("reader", 150);
    let id = app.queued_digest(&token).await;
    let small_batches = |s: &mut newsletter::configuration::Settings| {
        s.delivery.batch_size = 10;
        s.delivery.concurrency = 3;
    };
    let a = app.worker(small_batches);
    let b = app.worker(small_batches);
    let done = app.wait_until_sent(&token, id).await;
    a.stop().await;
    b.stop().await;
    assert_eq!(done["sent"], 150, "{done}");
    let copies = app.copies_by_recipient();
    for reader in &readers {
        assert_eq!(copies.get(reader), Some(&1), "{reader}");
    }
}
