//! Someone who leaves while a digest is going out gets nothing more, and the digest still
//! finishes.

use std::time::{Duration, Instant};

use crate::helpers::spawn_app_with;

#[tokio::test]
async fn someone_unsubscribed_by_staff_mid_digest_gets_nothing_more() {
    let app = spawn_app_with(|s| s.signup.welcome_email = false).await;
    app.smtp.take_time(Duration::from_millis(40));
    let token = app.staff_token();
    app.seed_confirmed("reader", 30);
    let id = app.queued_digest(&token).await;
    while app.smtp.all_messages().len() < 4 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Staff find the person by address (in another letter case) and unsubscribe them.
    let found: serde_json::Value = app
        .admin_json(&token, "/subscribers?email=Reader20@Example.org")
        .await;
    assert_eq!(found["total"], 1, "{found}");
    let subscriber = found["subscribers"][0]["id"].as_i64().unwrap();
    let response = app
        .admin_post(
            &token,
            &format!("/subscribers/{subscriber}/unsubscribe"),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(response.status().as_u16(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "unsubscribed");

    let done = app.wait_until_sent(&token, id).await;
    assert_eq!(
        (done["sent"].as_i64(), done["skipped"].as_i64()),
        (Some(29), Some(1)),
        "{done}"
    );
    assert!(app.smtp.messages_to("reader20@example.org").is_empty());
    use diesel::prelude::*;
    use newsletter::db::schema::subscriber_events::dsl as e;
    let entries: Vec<(String, String, Option<String>)> = app.query(move |c| {
        e::subscriber_events
            .filter(e::subscriber_id.eq(subscriber))
            .select((e::kind, e::source, e::detail))
            .order(e::id)
            .load(c)
    });
    assert_eq!(entries.last().unwrap().0, "unsubscribed");
    assert_eq!(entries.last().unwrap().1, "staff-api");
    assert!(
        entries
            .last()
            .unwrap()
            .2
            .as_deref()
            .unwrap()
            .contains("staff token")
    );
    assert_eq!(
        app.admin_post(
            &token,
            "/subscribers/99999/unsubscribe",
            serde_json::json!({})
        )
        .await
        .status()
        .as_u16(),
        404
    );
}

#[tokio::test]
async fn erasing_the_last_person_a_digest_waits_for_finishes_the_digest() {
    let app = spawn_app_with(|s| {
        s.signup.welcome_email = false;
        s.delivery.retry_base_seconds = 3600;
    })
    .await;
    let token = app.staff_token();
    app.seed_confirmed("reader", 3);
    app.seed_confirmed("busy", 1);
    // Greylisted: their digest waits an hour for its next try.
    app.smtp
        .refuse("busy0@example.org", 451, "4.7.1 greylisted", None);
    let id = app.queued_digest(&token).await;
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let p: serde_json::Value = app.admin_json(&token, &format!("/digests/{id}")).await;
        if p["sent"] == 3 && p["queued"] == 1 {
            assert_eq!(p["status"], "sending");
            break;
        }
        assert!(Instant::now() < end, "{p}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let busy = app.subscriber_id("busy0@example.org");
    assert_eq!(
        app.admin_delete(&token, &format!("/subscribers/{busy}"))
            .await
            .status()
            .as_u16(),
        204
    );
    let p: serde_json::Value = app.admin_json(&token, &format!("/digests/{id}")).await;
    assert_eq!(p["status"], "sent", "not left sending: {p}");
    assert_eq!(
        (p["sent"].as_i64(), p["queued"].as_i64()),
        (Some(3), Some(0))
    );
}
