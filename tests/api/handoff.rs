//! A signup hands its confirmation straight to the worker of its process (`delivery::Handoff`):
//! the row is written `sending` under that worker's lease, and the job waits in its inbox.
//! These tests check that the queue's promises still hold: a crash loses nothing, a slow worker
//! keeps its leases, a full inbox falls back to the queue, and a flood of signups does not keep
//! other mail waiting.

use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use newsletter::db::Db;
use newsletter::db::schema::{confirmation_tokens, deliveries};
use newsletter::db::subscribers::Signup;
use newsletter::delivery::{DbStore, Handoff, Store, signup_writer};
use newsletter::domain::{LinkLimit, SubscriberEmail};

use crate::helpers::{TestApp, spawn_app_without_worker};

/// (status, claim_id, lease_expires_at) of every confirmation, in id order.
type Row = (String, Option<i64>, Option<chrono::NaiveDateTime>);

fn confirmations(app: &TestApp) -> Vec<Row> {
    app.query(|c| {
        deliveries::table
            .filter(deliveries::kind.eq("confirmation"))
            .order(deliveries::id)
            .select((
                deliveries::status,
                deliveries::claim_id,
                deliveries::lease_expires_at,
            ))
            .load(c)
    })
}

fn signup(email: &str) -> Signup {
    Signup {
        email: SubscriberEmail::parse(email).unwrap(),
        name: None,
        context: Default::default(),
        links: LinkLimit::per_hour(3),
    }
}

/// The inbox of a worker of `app`'s settings, open as when its worker runs, with room for
/// `capacity` jobs.
fn open_handoff(app: &TestApp, capacity: usize) -> Arc<Handoff> {
    let parts = newsletter::startup::build_parts(&app.settings).unwrap();
    let mut settings = app.settings.clone();
    settings.delivery.batch_size = capacity as i64;
    let handoff = Arc::new(Handoff::for_settings(&parts, &settings, Arc::default()));
    handoff.open();
    handoff
}

async fn sign_up_together(db: &Db, handoff: &Arc<Handoff>, emails: &[String]) {
    let writer = signup_writer(db.clone(), Some(handoff.clone()));
    let signed =
        futures_util::future::join_all(emails.iter().map(|e| writer.submit(signup(e)))).await;
    assert!(signed.iter().all(|s| s.is_ok()), "every signup is stored");
}

#[tokio::test]
async fn a_signup_writes_its_confirmation_leased_with_its_token_and_a_full_inbox_queues_the_rest() {
    let app = spawn_app_without_worker(|_| {}).await;
    let handoff = open_handoff(&app, 3);
    let emails: Vec<String> = (0..8).map(|i| format!("reader{i}@example.org")).collect();

    sign_up_together(&app.db, &handoff, &emails).await;

    let rows = confirmations(&app);
    assert_eq!(rows.len(), 8, "one confirmation per signup");
    let handed: Vec<&Row> = rows.iter().filter(|r| r.0 == "sending").collect();
    let queued = rows.iter().filter(|r| r.0 == "queued").count();
    assert_eq!(handed.len(), 3, "as many handed as the inbox had room for");
    assert_eq!(queued, 5, "the rest queued as before: {rows:?}");
    let now = chrono::Utc::now().naive_utc();
    for (_, claim, lease) in &handed {
        assert!(claim.is_some());
        let left = lease.unwrap() - now;
        assert!(
            left > chrono::Duration::seconds(25) && left <= chrono::Duration::seconds(30),
            "leased for the default 30 s lease, as a claim would: {left}"
        );
    }
    let tokens: i64 = app.query(|c| confirmation_tokens::table.count().get_result(c));
    assert_eq!(tokens, 3, "the handed mails' tokens are stored with them");
    assert_eq!(handoff.take(10).len(), 3, "their jobs wait in the inbox");
}

#[tokio::test]
async fn no_worker_running_here_means_every_confirmation_is_queued() {
    let app = spawn_app_without_worker(|_| {}).await;
    let handoff = open_handoff(&app, 10);
    assert!(handoff.close().is_empty());

    sign_up_together(&app.db, &handoff, &["late@example.org".to_string()]).await;

    let rows = confirmations(&app);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, "queued", "a stopped worker takes nothing");
}

#[tokio::test]
async fn the_heartbeat_renews_the_leases_of_what_waits_in_the_inbox() {
    let app = spawn_app_without_worker(|_| {}).await;
    let handoff = open_handoff(&app, 10);
    sign_up_together(&app.db, &handoff, &["waiting@example.org".to_string()]).await;
    // As if it had waited half its lease behind a slow relay.
    app.query(|c| {
        diesel::update(deliveries::table)
            .set(
                deliveries::lease_expires_at
                    .eq(chrono::Utc::now().naive_utc() + chrono::Duration::seconds(15)),
            )
            .execute(c)
    });
    let parts = newsletter::startup::build_parts(&app.settings).unwrap();
    let store = DbStore::new(app.db.clone(), parts.composer.clone(), &app.settings)
        .with_handoff(handoff.clone());

    // The heartbeat of a worker holding nothing else.
    store.renew(Vec::new()).await.unwrap();

    let lease = confirmations(&app)[0].2.unwrap();
    let left = lease - chrono::Utc::now().naive_utc();
    assert!(
        left > chrono::Duration::seconds(25),
        "renewed to a whole lease, so no other worker takes it meanwhile: {left}"
    );
}

#[tokio::test]
async fn a_flood_of_signups_does_not_keep_queued_mail_waiting() {
    let app = spawn_app_without_worker(|_| {}).await;
    let handoff = open_handoff(&app, 200);
    let parts = newsletter::startup::build_parts(&app.settings).unwrap();
    let store = DbStore::new(app.db.clone(), parts.composer.clone(), &app.settings)
        .with_handoff(handoff.clone());
    let emails: Vec<String> = (0..50).map(|i| format!("flood{i}@example.org")).collect();
    sign_up_together(&app.db, &handoff, &emails).await;
    // Mail in the queue, from before the flood (a queued confirmation: no worker took it).
    let app_signup = app.signup("queued@example.org").await;
    assert_eq!(app_signup.status().as_u16(), 202);

    // The inbox holds more than a claim takes; the queue still gets half of it.
    let claimed = store.claim(10).await.unwrap();
    assert_eq!(
        claimed.jobs.len(),
        6,
        "half from the inbox, and the queue's one"
    );
    assert!(
        claimed
            .jobs
            .iter()
            .any(|job| job.letter.to == "queued@example.org"),
        "the queued mail is claimed beside the handed ones"
    );

    // Nothing more in the queue: the next claims take from the inbox without asking the
    // database, while signups keep handing over, but no longer than 50 ms.
    let empty = store.claim(10).await.unwrap();
    assert!(
        empty
            .jobs
            .iter()
            .all(|j| j.letter.to != "queued@example.org")
    );
    sign_up_together(&app.db, &handoff, &["more@example.org".to_string()]).await;
    let looked_at = Instant::now();
    assert_eq!(
        app.signup("second@example.org").await.status().as_u16(),
        202
    );
    let mut found = false;
    while looked_at.elapsed() < Duration::from_secs(2) && !found {
        let claimed = store.claim(100).await.unwrap();
        if let Some(wait) = claimed.look_again_in {
            assert!(wait <= Duration::from_millis(50), "{wait:?}");
        }
        found = claimed
            .jobs
            .iter()
            .any(|job| job.letter.to == "second@example.org");
        if !found {
            tokio::time::sleep(claimed.look_again_in.unwrap_or_default()).await;
        }
    }
    assert!(found, "mail queued during the flood is claimed");
}

#[tokio::test]
async fn a_serve_killed_after_signups_handed_their_mail_over_sends_it_after_the_lease_runs_out() {
    // Defaults but for the rate, which keeps most confirmations waiting when the kill comes.
    let app = spawn_app_without_worker(|_| {}).await;
    let serve = app.serve_process(&[("NEWSLETTER__DELIVERY__RATE_PER_SECOND", "2")]);
    app.until_healthy(&serve.base).await;
    let emails: Vec<String> = (0..20).map(|i| format!("crash{i}@example.org")).collect();
    let client = reqwest::Client::new();
    for email in &emails {
        let response = client
            .post(format!("{}/subscriptions", serve.base))
            .json(&serde_json::json!({ "email": email }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 202);
    }
    serve.stop(); // SIGKILL
    let sent_before = app.smtp.all_messages().len();
    let held = confirmations(&app)
        .iter()
        .filter(|r| r.0 == "sending")
        .count();
    assert!(
        held >= 10,
        "the kill leaves handed mail unsent ({held} held)"
    );

    // A worker with the default lease takes it back once the lease runs out, and sends it.
    let restarted = Instant::now();
    let worker = app.worker(|_| {});
    for email in &emails {
        app.smtp
            .wait_for_within(email, 1, Duration::from_secs(60))
            .await;
    }
    let took = restarted.elapsed();
    worker.stop().await;
    println!("{held} held at the kill, {sent_before} sent before; all sent {took:?} after");
    assert!(took < Duration::from_secs(45), "{took:?}");
    // Only mail between its hand-off to SMTP and its recorded outcome can go twice: the
    // window, 2 x concurrency.
    let window = 2 * app.settings.delivery.concurrency;
    let copies = app.copies_by_recipient();
    let twice = emails.iter().filter(|e| copies[*e] > 1).count();
    assert!(twice <= window, "{twice} got a second copy");
    // The link of a mail sent after the crash works.
    let last = app.smtp.messages_to(&emails[19]).pop().unwrap();
    let response = app
        .press_confirm(&last.link("/subscriptions/confirm"))
        .await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        app.subscriber_status(&emails[19]).as_deref(),
        Some("confirmed")
    );
}

#[tokio::test]
async fn a_claim_whose_read_of_the_queue_fails_still_hands_out_the_confirmations_it_took() {
    let app = spawn_app_without_worker(|_| {}).await;
    let handoff = open_handoff(&app, 10);
    sign_up_together(&app.db, &handoff, &["taken@example.org".to_string()]).await;
    let parts = newsletter::startup::build_parts(&app.settings).unwrap();
    let store = DbStore::new(app.db.clone(), parts.composer.clone(), &app.settings)
        .with_handoff(handoff.clone());
    // The queue's read fails: a table it reads is gone for the moment.
    app.query(|c| diesel::sql_query("ALTER TABLE digests RENAME TO digests_away").execute(c));

    let claimed = store.claim(10).await;

    app.query(|c| diesel::sql_query("ALTER TABLE digests_away RENAME TO digests").execute(c));
    let claimed = claimed.expect("the handed mail is claimed already");
    assert_eq!(claimed.jobs.len(), 1);
    assert_eq!(claimed.jobs[0].letter.to, "taken@example.org");
    assert!(handoff.take(10).is_empty(), "nothing is left behind");
}
