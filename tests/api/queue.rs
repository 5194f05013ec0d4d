//! The queue's promises against a real database and SMTP server: outcomes are fenced by their
//! claim, leases are renewed while a worker lives and reclaimed (within max_attempts) when it
//! does not, at most the window of mail is unrecorded, and every copy that left keeps a working
//! unsubscribe link.

use std::time::{Duration, Instant};

use diesel::prelude::*;
use newsletter::db::queue::{
    ClaimRequest, Finished, Outcome, RecordTerms, RowSecrets, claim_due_deliveries,
    reclaim_expired_leases, record_outcomes,
};
use newsletter::db::schema::{deliveries::dsl as d, subscribers::dsl as s};
use newsletter::domain::FailureKind;

use crate::helpers::{DroppingSmtp, TestApp, WriteLock, spawn_app_with, spawn_app_without_worker};

fn claim(app: &TestApp, claim_id: i64) -> Vec<newsletter::db::queue::ClaimedRow> {
    let mut conn = app.db.get().unwrap();
    let request = ClaimRequest {
        claim_id,
        limit: 10,
        lease: chrono::Duration::seconds(30),
        digest_cursors: Default::default(),
    };
    claim_due_deliveries(&mut conn, &request, &mut |row| RowSecrets {
        message_id: format!("<digest.{}@test>", row.id),
        ..RowSecrets::default()
    })
    .unwrap()
    .rows
}

fn record(app: &TestApp, row: &newsletter::db::queue::ClaimedRow, outcome: Outcome) -> usize {
    let mut conn = app.db.get().unwrap();
    let finished = Finished {
        id: row.id,
        claim_id: row.claim_id,
        digest_id: row.digest_id,
        subscriber_id: row.subscriber_id,
        outcome,
    };
    let terms = RecordTerms {
        pause_after_failures: 50,
    };
    record_outcomes(&mut conn, &[finished], &terms, &Default::default())
        .unwrap()
        .stale
}

/// Makes every lease run out now, as if the worker holding it had been paused that long.
fn expire_leases(app: &TestApp) {
    app.query(|c| {
        diesel::update(d::deliveries.filter(d::status.eq("sending")))
            .set(
                d::lease_expires_at
                    .eq(chrono::Utc::now().naive_utc() - chrono::Duration::seconds(1)),
            )
            .execute(c)
    });
}

fn row_state(app: &TestApp, id: i64) -> (String, i32) {
    app.query(move |c| {
        d::deliveries
            .find(id)
            .select((d::status, d::attempts))
            .first(c)
    })
}

#[tokio::test]
async fn a_late_outcome_from_a_worker_that_lost_its_lease_changes_nothing() {
    let app = spawn_app_without_worker(|_| {}).await;
    let token = app.staff_token();
    app.seed_confirmed("reader", 1);
    app.queued_digest(&token).await;

    let first = claim(&app, 1);
    assert_eq!(first.len(), 1);
    // Worker 1 stalls past its lease; worker 2 takes the row over and sends it.
    expire_leases(&app);
    let reclaimed = {
        let mut conn = app.db.get().unwrap();
        reclaim_expired_leases(&mut conn, 5).unwrap()
    };
    assert_eq!(reclaimed.requeued, 1);
    let second = claim(&app, 2);
    assert_eq!((second.len(), second[0].id), (1, first[0].id));
    assert_eq!(record(&app, &second[0], Outcome::Sent), 0);

    // Worker 1 wakes up with a 4xx, a bounce, a release: each is discarded.
    let late = [
        Outcome::Retry {
            at: chrono::Utc::now().naive_utc(),
            error: "451 4.7.1 try later".into(),
        },
        Outcome::Failed {
            failure: FailureKind::Bounce,
            error: "550 5.1.1 no such user".into(),
        },
        Outcome::Released,
        Outcome::Deferred {
            at: chrono::Utc::now().naive_utc(),
        },
        Outcome::Sent,
    ];
    for outcome in late {
        assert_eq!(
            record(&app, &first[0], outcome.clone()),
            1,
            "{outcome:?} is stale"
        );
    }
    assert_eq!(row_state(&app, first[0].id), ("sent".into(), 2));
    assert_eq!(
        app.subscriber_status("reader0@example.org").as_deref(),
        Some("confirmed"),
        "a stale bounce does not touch the subscriber"
    );
}

#[tokio::test]
async fn a_deferred_row_waits_for_its_slot_without_spending_an_attempt() {
    let app = spawn_app_without_worker(|_| {}).await;
    let token = app.staff_token();
    app.seed_confirmed("reader", 2);
    app.queued_digest(&token).await;
    let rows = claim(&app, 1);
    assert_eq!(rows.len(), 2);
    let slot = chrono::Utc::now().naive_utc() + chrono::Duration::seconds(2);
    // Both backends write a batch of them: PostgreSQL in one statement.
    let mut conn = app.db.get().unwrap();
    let batch: Vec<Finished> = rows
        .iter()
        .map(|row| Finished {
            id: row.id,
            claim_id: row.claim_id,
            digest_id: row.digest_id,
            subscriber_id: row.subscriber_id,
            outcome: Outcome::Deferred { at: slot },
        })
        .collect();
    let terms = RecordTerms {
        pause_after_failures: 50,
    };
    let report = record_outcomes(&mut conn, &batch, &terms, &Default::default()).unwrap();
    drop(conn);
    assert_eq!(report.stale, 0);
    for row in &rows {
        assert_eq!(
            row_state(&app, row.id),
            ("queued".into(), 0),
            "not an attempt"
        );
    }
    assert!(claim(&app, 2).is_empty(), "not due before its slot");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let again = claim(&app, 3);
    assert_eq!(again.len(), 2, "due at its slot");
    assert!(again.iter().all(|row| row.attempts == 1));
}

#[tokio::test]
async fn a_claim_reads_on_past_mail_put_back_and_takes_it_once_the_rest_is_taken() {
    let app = spawn_app_without_worker(|_| {}).await;
    let token = app.staff_token();
    app.seed_confirmed("reader", 6);
    app.queued_digest(&token).await;
    let claim_with = |claim_id: i64, limit: i64, cursors: &[(i64, i64)]| {
        let mut conn = app.db.get().unwrap();
        let request = ClaimRequest {
            claim_id,
            limit,
            lease: chrono::Duration::seconds(30),
            digest_cursors: cursors.iter().copied().collect(),
        };
        claim_due_deliveries(&mut conn, &request, &mut |_| RowSecrets::default()).unwrap()
    };
    let first = claim_with(1, 2, &[]);
    assert_eq!(first.rows.len(), 2);
    let cursor = first.digest_cursors.clone();
    assert_eq!(cursor[0].1, first.rows[1].id);
    // The first row is put back, due at once; the second was sent.
    let due_now = chrono::Utc::now().naive_utc() - chrono::Duration::seconds(1);
    record(&app, &first.rows[0], Outcome::Deferred { at: due_now });
    record(&app, &first.rows[1], Outcome::Sent);
    // Reading on from the cursor: the four rows after it, not the one put back.
    let ahead = claim_with(2, 4, &cursor);
    let ids: Vec<i64> = ahead.rows.iter().map(|r| r.id).collect();
    assert_eq!(ids.len(), 4);
    assert!(ids.iter().all(|id| *id > first.rows[1].id), "{ids:?}");
    assert!(ahead.drained_digests.is_empty());
    // With the rest taken, the claim goes back for it.
    let behind = claim_with(3, 4, &ahead.digest_cursors);
    assert_eq!(
        behind.rows.iter().map(|r| r.id).collect::<Vec<_>>(),
        [first.rows[0].id]
    );
    assert_eq!(behind.drained_digests.len(), 1, "nothing more is due");
}

#[tokio::test]
async fn a_row_whose_worker_keeps_dying_fails_after_max_attempts() {
    let app = spawn_app_without_worker(|s| s.delivery.max_attempts = 3).await;
    let token = app.staff_token();
    app.seed_confirmed("reader", 1);
    let digest = app.queued_digest(&token).await;
    for attempt in 1..=3 {
        let rows = claim(&app, attempt);
        assert_eq!(rows.len(), 1, "attempt {attempt} claims it again");
        assert_eq!(rows[0].attempts, attempt as i32);
        expire_leases(&app);
        let mut conn = app.db.get().unwrap();
        let reclaimed = reclaim_expired_leases(&mut conn, 3).unwrap();
        let expected = if attempt < 3 { (1, 0) } else { (0, 1) };
        assert_eq!((reclaimed.requeued, reclaimed.failed), expected);
    }
    let (status, error): (String, Option<String>) =
        app.query(|c| d::deliveries.select((d::status, d::last_error)).first(c));
    assert_eq!(status, "failed");
    assert!(error.unwrap().contains("gave up after 3 attempts"));
    let progress = app.wait_until_sent(&token, digest).await;
    assert_eq!(progress["failures"]["local"], 1, "{progress}");
}

#[tokio::test]
async fn a_relay_slower_than_the_lease_still_delivers_each_reader_exactly_once() {
    let app = spawn_app_without_worker(|s| {
        s.delivery.lease_seconds = 5;
        s.delivery.concurrency = 2;
    })
    .await;
    app.smtp.take_time(Duration::from_secs(3));
    let token = app.staff_token();
    let readers = app.seed_confirmed("reader", 8);
    let id = app.queued_digest(&token).await;
    // Two workers, so a lease that ran out would be taken over by the other one.
    let a = app.worker(|_| {});
    let b = app.worker(|_| {});
    let done = app.wait_until_sent(&token, id).await;
    a.stop().await;
    b.stop().await;
    assert_eq!(done["sent"], 8, "{done}");
    let copies = app.copies_by_recipient();
    for reader in &readers {
        assert_eq!(copies.get(reader), Some(&1), "{reader}");
    }
}

#[tokio::test]
async fn while_outcomes_cannot_be_written_a_worker_stops_sending_and_a_crash_then_repeats_little() {
    let app = spawn_app_without_worker(|_| {}).await;
    let token = app.staff_token();
    let readers = app.seed_confirmed("reader", 1000);
    let id = app.queued_digest(&token).await;
    // At 300 mails a second (past the rate limiter's first burst) the window holds 40 ms of
    // sending, 12 mails. (That the window bounds what goes out unrecorded is proven
    // deterministically by the worker's own tests; this is the promise on a real database.)
    let worker = app.worker(|s| s.delivery.rate_per_second = 300);
    let started = Instant::now();
    while app.smtp.all_messages().len() < 500 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the worker sends"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The database stops taking writes (a long backup, a stuck migration).
    let lock = WriteLock::hold(&app, Duration::from_secs(30));
    let at_lock = app.smtp.all_messages().len();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during = app.smtp.all_messages().len() - at_lock;
    let window = (2 * app.settings.delivery.concurrency).max(300 * 40 / 1000);
    assert!(
        during <= window,
        "{during} mails went out while none could be recorded (window {window})"
    );
    // The worker dies now, with those outcomes unwritten.
    worker.kill();
    lock.release();

    let second = app.worker(|s| s.delivery.lease_seconds = 1);
    let done = app.wait_until_sent(&token, id).await;
    second.stop().await;
    assert_eq!(done["sent"], 1000, "{done}");
    let copies = app.copies_by_recipient();
    let twice = readers
        .iter()
        .filter(|r| copies.get(*r) == Some(&2))
        .count();
    for reader in &readers {
        assert!(copies.contains_key(reader), "{reader} was missed");
    }
    assert!(
        twice <= window,
        "{twice} readers got two copies (window {window})"
    );
    println!(
        "database locked: {during} mails went out unrecorded; after the crash {twice} readers got a second copy"
    );
}

#[tokio::test]
async fn a_copy_whose_250_was_lost_keeps_a_working_unsubscribe_link() {
    let flaky = DroppingSmtp::losing_replies(1);
    let app = spawn_app_with(|s| s.mail.smtp.port = flaky.port).await;
    let token = app.staff_token();
    app.seed_confirmed("reader", 1);
    let id = app.queued_digest(&token).await;
    app.wait_until_sent(&token, id).await;
    let copies = flaky.accepted.lock().unwrap().clone();
    assert_eq!(
        copies.len(),
        2,
        "the first copy arrived, its 250 did not: sent again"
    );
    let links: Vec<String> = copies
        .iter()
        .map(|raw| {
            let text = String::from_utf8_lossy(raw).replace("=\r\n", "");
            let start = text.find("/unsubscribe?token=").unwrap();
            let token: String = text[start + 19..].chars().take(64).collect();
            format!("/unsubscribe?token={token}")
        })
        .collect();
    assert_ne!(links[0], links[1], "each copy has its own token");
    for link in &links {
        let page = app.get(link).await;
        assert_eq!(page.status().as_u16(), 200, "{link} works");
    }
    let response = app
        .client
        .post(app.url(&links[0]))
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let status: String = app.query(|c| s::subscribers.select(s::status).first(c));
    assert_eq!(
        status, "unsubscribed",
        "the first copy's one-click link unsubscribes"
    );
}
