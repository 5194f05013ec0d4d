//! Nothing holds the service for long: a body that trickles in, a statement stuck behind a
//! lock, a page number that would overflow.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;

use crate::helpers::{on_postgres, spawn_app, spawn_app_with};

/// Sends the head of a request and the start of its body, then nothing; returns the status
/// line of the answer and how long it took.
fn trickle(address: &str, path: &str, extra_headers: &str) -> (String, Duration) {
    let host = address.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let started = Instant::now();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n{extra_headers}Content-Length: 100\r\n\r\n{{\"email\""
    )
    .unwrap();
    let mut answer = [0u8; 512];
    let n = stream.read(&mut answer).unwrap_or(0);
    let text = String::from_utf8_lossy(&answer[..n]).to_string();
    (
        text.lines().next().unwrap_or_default().to_string(),
        started.elapsed(),
    )
}

#[tokio::test]
async fn a_body_that_trickles_in_is_cut_off_with_408() {
    let app = spawn_app().await;
    let token = app.staff_token();
    let address = app.address.clone();
    let auth = format!("Authorization: Bearer {token}\r\n");
    let (signup, admin) = tokio::task::spawn_blocking(move || {
        (
            trickle(&address, "/subscriptions", ""),
            trickle(&address, "/admin/api/articles", &auth),
        )
    })
    .await
    .unwrap();
    for (status, took) in [signup, admin] {
        assert!(status.contains("408"), "{status}");
        assert!(took < Duration::from_secs(15), "{took:?}");
    }
    assert_eq!(app.count_subscribers(), 0);
}

#[tokio::test]
async fn page_numbers_that_would_overflow_answer_400() {
    let app = spawn_app().await;
    let token = app.staff_token();
    for page in ["9223372036854775807", "1000001", "0", "-3", "abc"] {
        for path in ["/subscribers", "/articles"] {
            let response = app.admin_get(&token, &format!("{path}?page={page}")).await;
            assert_eq!(response.status().as_u16(), 400, "{path}?page={page}");
            let body: serde_json::Value = response.json().await.unwrap();
            assert!(body["error"].is_string(), "{body}");
        }
    }
    let last = app.admin_get(&token, "/subscribers?page=1000000").await;
    assert_eq!(last.status().as_u16(), 200);
}

#[tokio::test]
async fn on_postgresql_a_statement_stuck_behind_a_lock_is_cancelled_and_answered_503() {
    if !on_postgres() {
        return;
    }
    let defaults = spawn_app().await;
    let shown: String = defaults.query(|c| {
        diesel::select(diesel::dsl::sql::<diesel::sql_types::Text>(
            "current_setting('statement_timeout')",
        ))
        .get_result(c)
    });
    assert_eq!(shown, "30s", "the default applies to pooled connections");

    let app = spawn_app_with(|s| s.database.statement_timeout_seconds = 2).await;
    use secrecy::ExposeSecret;
    let mut locker = PgConnection::establish(app.settings.database.url.expose_secret()).unwrap();
    locker
        .batch_execute("BEGIN; LOCK TABLE subscribers IN ACCESS EXCLUSIVE MODE;")
        .unwrap();
    let started = Instant::now();
    let response = app.signup("stuck@example.org").await;
    let took = started.elapsed();
    locker.batch_execute("ROLLBACK").unwrap();
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(response.headers()["Retry-After"], "5");
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert_eq!(app.signup("stuck@example.org").await.status().as_u16(), 202);
}
