//! The database misbehaves: a long write lock on SQLite, killed connections on PostgreSQL.

use std::time::Duration;

use diesel::prelude::*;
use secrecy::ExposeSecret;

use crate::helpers::{WriteLock, on_postgres, spawn_app, spawn_app_without_worker};

#[tokio::test]
async fn signups_wait_out_a_sqlite_write_lock_instead_of_failing() {
    if on_postgres() {
        return;
    }
    let app = spawn_app().await;
    let lock = WriteLock::hold(&app, Duration::from_millis(1500));
    let signups = (0..5).map(|i| {
        let app = &app;
        async move {
            app.signup(&format!("locked{i}@example.org"))
                .await
                .status()
                .as_u16()
        }
    });
    let statuses = futures_util::future::join_all(signups).await;
    lock.release();
    assert_eq!(statuses, [202; 5]);
    assert_eq!(app.count_subscribers(), 5);
}

#[tokio::test]
async fn a_lock_held_past_the_busy_timeout_answers_503_and_stores_nothing() {
    if on_postgres() {
        return;
    }
    let app = spawn_app_without_worker(|_| {}).await;
    // Another process's writer that does not let go (a stuck backup or migration, say).
    let lock = WriteLock::hold(&app, Duration::from_secs(60));

    // Both wait out SQLite's busy timeout (10 s), then get a clear answer.
    let (json, form) = tokio::join!(
        app.signup("late@example.org"),
        app.post_form(
            "/subscriptions",
            &[("email", "form@example.org"), ("name", "Fern")]
        )
    );
    lock.release();

    assert_eq!(json.status().as_u16(), 503);
    assert_eq!(json.headers()["Retry-After"], "5");
    let body: serde_json::Value = json.json().await.unwrap();
    assert_eq!(
        body["error"],
        "the service is busy; please try again in a few seconds"
    );
    assert_eq!(form.status().as_u16(), 503);
    assert_eq!(form.headers()["Retry-After"], "5");
    let page = form.text().await.unwrap();
    assert!(
        page.contains("We could not save your signup just now"),
        "{page}"
    );
    assert!(
        page.contains("value=\"form@example.org\""),
        "filled in again: {page}"
    );
    assert_eq!(app.count_subscribers(), 0, "nothing half-written");

    // Once the lock is gone, signing up again works.
    assert_eq!(app.signup("late@example.org").await.status().as_u16(), 202);
    assert_eq!(app.count_subscribers(), 1);
}

#[tokio::test]
async fn the_worker_recovers_when_postgresql_kills_its_connections_mid_send() {
    if !on_postgres() {
        return;
    }
    let app = spawn_app_without_worker(|_| {}).await;
    let token = app.staff_token();
    let readers = app.seed_confirmed("reader", 80);
    let id = app.queued_digest(&token).await;

    let worker = app.worker(|s| {
        s.delivery.rate_per_second = 40;
        s.delivery.batch_size = 10;
    });
    tokio::time::sleep(Duration::from_millis(800)).await;
    let database = url::Url::parse(app.settings.database.url.expose_secret())
        .unwrap()
        .path()
        .trim_start_matches('/')
        .to_string();
    let admin_url = std::env::var("NEWSLETTER_TEST_DATABASE_URL").unwrap();
    let mut admin = PgConnection::establish(&admin_url).unwrap();
    let killed: Vec<bool> = diesel::sql_query(format!(
        "SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity WHERE datname = '{database}' AND pid <> pg_backend_pid()"
    ))
    .load::<Killed>(&mut admin)
    .unwrap()
    .into_iter()
    .map(|k| k.killed)
    .collect();
    assert!(!killed.is_empty(), "there were connections to kill");

    let done = app.wait_until_sent(&token, id).await;
    worker.stop().await;
    assert_eq!(done["status"], "sent", "{done}");
    for reader in &readers {
        assert!(
            !app.smtp.messages_to(reader).is_empty(),
            "{reader} was missed"
        );
    }
}

#[derive(QueryableByName)]
struct Killed {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    killed: bool,
}
