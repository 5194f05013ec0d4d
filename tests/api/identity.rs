//! One person, one subscriber, whatever the letter case: signup, lookup, import, erasure, and
//! the migration that merged the duplicates of earlier versions.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use newsletter::db::schema::{
    deliveries::dsl as d, subscriber_events::dsl as e, subscribers::dsl as s,
};
use newsletter::db::{Db, DbConnection};

use crate::helpers::{empty_database_url, spawn_app};

const SQLITE: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES: EmbeddedMigrations = embed_migrations!("migrations/postgres");

#[tokio::test]
async fn signups_that_differ_only_in_case_are_one_subscriber() {
    let app = spawn_app().await;
    app.signup("Maria.Gonzalez@Example.org").await;
    app.smtp.wait_for("maria.gonzalez@example.org", 1).await;
    // The second signup is the same person asking again: a new link, not a new subscriber.
    assert_eq!(
        app.signup("maria.gonzalez@example.org")
            .await
            .status()
            .as_u16(),
        202
    );
    let mails = app.smtp.wait_for("maria.gonzalez@example.org", 2).await;
    assert_eq!(mails.len(), 2);
    assert_eq!(app.count_subscribers(), 1);
    let stored: String = app.query(|c| s::subscribers.select(s::email).first(c));
    assert_eq!(stored, "Maria.Gonzalez@example.org", "kept as first typed");

    // Confirmed under one spelling, a signup under another changes nothing and sends nothing.
    let response = app
        .press_confirm(&mails[1].link("/subscriptions/confirm"))
        .await;
    assert_eq!(response.status().as_u16(), 200);
    app.signup("MARIA.GONZALEZ@EXAMPLE.ORG").await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(app.delivery_statuses("confirmation").len(), 2);
    assert_eq!(app.count_subscribers(), 1);

    // Staff find and erase them under yet another spelling; an import cannot bring them back.
    let token = app.staff_token();
    let found: serde_json::Value = app
        .admin_json(&token, "/subscribers?email=maria.GONZALEZ@example.org")
        .await;
    assert_eq!(found["total"], 1, "{found}");
    let erase = app
        .command(&["subscribers", "erase", "MARIA.gonzalez@example.org"])
        .output()
        .unwrap();
    assert!(
        erase.status.success(),
        "{}",
        String::from_utf8_lossy(&erase.stderr)
    );
    assert_eq!(app.count_subscribers(), 0);
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), "email\nmaria.gonzalez@EXAMPLE.org\n").unwrap();
    let import = app
        .command(&["subscribers", "import", file.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&import.stdout).contains("erased earlier (not re-added) 1"));
    assert_eq!(app.count_subscribers(), 0);
}

#[tokio::test]
async fn the_migration_merges_records_that_differ_only_in_case_into_the_earliest() {
    let dir = tempfile::tempdir().unwrap();
    let url = empty_database_url(dir.path());
    let db = Db::connect(&url.clone().into(), 1).unwrap();
    {
        // The schema and data of the first release, where case made two subscribers.
        let mut conn = db.get().unwrap();
        match &mut *conn {
            DbConnection::Sqlite(c) => c.run_next_migration(SQLITE).map(|_| ()),
            DbConnection::Postgres(c) => c.run_next_migration(POSTGRES).map(|_| ()),
        }
        .unwrap();
        conn.batch_execute(
            "INSERT INTO subscribers (id, email, name, status, created_at, updated_at, confirmed_at, unsubscribed_at) VALUES
              (1, 'Maria.Gonzalez@example.org', NULL, 'confirmed', '2026-01-01 10:00:00', '2026-01-02 10:00:00', '2026-01-02 10:00:00', NULL),
              (2, 'maria.gonzalez@example.org', 'Maria', 'unsubscribed', '2026-03-01 10:00:00', '2026-03-05 10:00:00', '2026-03-02 10:00:00', '2026-03-05 10:00:00'),
              (3, 'MARIA.GONZALEZ@example.org', NULL, 'pending', '2026-04-01 10:00:00', '2026-04-01 10:00:00', NULL, NULL),
              (4, 'Ann@example.org', NULL, 'confirmed', '2026-01-01 10:00:00', '2026-01-01 10:00:00', '2026-01-01 10:00:00', NULL),
              (5, 'ann@example.org', NULL, 'pending', '2026-02-01 10:00:00', '2026-02-01 10:00:00', NULL, NULL),
              (6, 'other@example.org', NULL, 'confirmed', '2026-01-01 10:00:00', '2026-01-01 10:00:00', '2026-01-01 10:00:00', NULL);
             INSERT INTO subscriber_events (subscriber_id, kind, source, created_at) VALUES
              (1, 'subscribed', 'form', '2026-01-01 10:00:00'), (1, 'confirmed', 'confirmation-link', '2026-01-02 10:00:00'),
              (2, 'subscribed', 'form', '2026-03-01 10:00:00'), (2, 'unsubscribed', 'unsubscribe-link', '2026-03-05 10:00:00'),
              (3, 'subscribed', 'api', '2026-04-01 10:00:00');
             INSERT INTO deliveries (id, kind, priority, subscriber_id, digest_id, status, attempts, next_attempt_at, created_at) VALUES
              (10, 'digest', 1, 1, 7, 'sent', 1, '2026-02-01 10:00:00', '2026-02-01 10:00:00'),
              (11, 'digest', 1, 2, 7, 'sent', 1, '2026-02-01 10:00:00', '2026-02-01 10:00:00'),
              (12, 'welcome', 0, 2, NULL, 'sent', 1, '2026-03-02 10:00:00', '2026-03-02 10:00:00');",
        )
        .unwrap();
    }
    db.migrate().unwrap();
    let mut conn = db.get().unwrap();
    let people: Vec<(i64, String, String, Option<String>, chrono::NaiveDateTime)> = s::subscribers
        .order(s::id)
        .select((s::id, s::email, s::status, s::name, s::created_at))
        .load(&mut *conn)
        .unwrap();
    let summary: Vec<(i64, &str, &str)> = people
        .iter()
        .map(|(id, email, status, _, _)| (*id, email.as_str(), status.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            // Confirmed, unsubscribed, then signed up again: pending, as a new signup makes them.
            (1, "Maria.Gonzalez@example.org", "pending"),
            // Confirmed, then a second signup: still confirmed.
            (4, "Ann@example.org", "confirmed"),
            (6, "other@example.org", "confirmed"),
        ]
    );
    assert_eq!(people[0].3.as_deref(), Some("Maria"), "the name is kept");
    assert_eq!(
        people[0].4.to_string(),
        "2026-01-01 10:00:00",
        "the earliest consent"
    );
    let ledger: Vec<(String, Option<String>)> = e::subscriber_events
        .filter(e::subscriber_id.eq(1))
        .order(e::id)
        .select((e::kind, e::detail))
        .load(&mut *conn)
        .unwrap();
    let kinds: Vec<&str> = ledger.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "subscribed",
            "confirmed",
            "subscribed",
            "unsubscribed",
            "subscribed",
            "merged"
        ]
    );
    let merged = ledger.last().unwrap().1.as_deref().unwrap();
    assert!(
        merged.contains("merged 3 records")
            && merged.contains(
                "Maria.Gonzalez@example.org, maria.gonzalez@example.org, MARIA.GONZALEZ@example.org"
            ),
        "{merged}"
    );
    let mail: Vec<(i64, i64)> = d::deliveries
        .order(d::id)
        .select((d::id, d::subscriber_id.assume_not_null()))
        .load(&mut *conn)
        .unwrap();
    assert_eq!(
        mail,
        [(10, 1), (12, 1)],
        "the digest reached the person once"
    );
}
