use diesel::prelude::*;
use newsletter::db::queue::enqueue_for_subscribers;
use newsletter::db::schema::subscribers;
use newsletter::domain::DeliveryKind;

use crate::helpers::{TestApp, spawn_app};

/// A confirmed subscriber and the unsubscribe URL of their welcome mail.
async fn unsubscribe_url(app: &TestApp, email: &str) -> String {
    app.confirmed_subscriber(email).await;
    let welcome = app.smtp.wait_for(email, 2).await.remove(1);
    let header = welcome.header("List-Unsubscribe").unwrap();
    header
        .split(['<', '>'])
        .find(|part| part.starts_with("http"))
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn get_shows_a_page_with_one_button_and_changes_nothing() {
    let app = spawn_app().await;
    let url = unsubscribe_url(&app, "alice@example.org").await;
    let response = app.get(&url).await;
    assert_eq!(response.status().as_u16(), 200);
    let page = response.text().await.unwrap();
    assert!(page.contains("<form method=\"post\"") && page.contains("al***@example.org"));
    assert_eq!(
        app.subscriber_status("alice@example.org").as_deref(),
        Some("confirmed")
    );
}

#[tokio::test]
async fn a_one_click_post_unsubscribes_and_doing_it_again_is_harmless() {
    let app = spawn_app().await;
    let url = unsubscribe_url(&app, "bob@example.org").await;
    for _ in 0..2 {
        let response = app
            .client
            .post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("List-Unsubscribe=One-Click")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
    }
    assert_eq!(
        app.subscriber_status("bob@example.org").as_deref(),
        Some("unsubscribed")
    );
    use newsletter::db::schema::subscriber_events::dsl as e;
    let kinds: Vec<String> =
        app.query(|c| e::subscriber_events.select(e::kind).order(e::id).load(c));
    assert_eq!(kinds, ["subscribed", "confirmed", "unsubscribed"]);
}

#[tokio::test]
async fn forged_unsubscribe_tokens_get_a_404_page() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(app.url("/unsubscribe?token=forged0000000000000000000000"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
    let response = app
        .get(&format!("/unsubscribe?token={}", "cd".repeat(32)))
        .await;
    assert_eq!(response.status().as_u16(), 404);
}

#[tokio::test]
async fn mail_queued_for_someone_who_left_is_skipped_and_they_can_sign_up_again() {
    let app = spawn_app().await;
    let url = unsubscribe_url(&app, "carol@example.org").await;
    app.client.post(&url).send().await.unwrap();
    let id: i64 = app.query(|c| subscribers::table.select(subscribers::id).first(c));
    app.query(|c| enqueue_for_subscribers(c, DeliveryKind::Welcome, &[id]));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while app.delivery_statuses("welcome").last().map(String::as_str) != Some("skipped")
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(app.delivery_statuses("welcome"), ["sent", "skipped"]);
    assert_eq!(app.smtp.messages_to("carol@example.org").len(), 2);

    // Signing up again starts a new double opt-in.
    app.confirmed_subscriber("carol@example.org").await;
    assert_eq!(
        app.subscriber_status("carol@example.org").as_deref(),
        Some("confirmed")
    );
}

#[tokio::test]
async fn twenty_simultaneous_one_click_posts_unsubscribe_once() {
    let app = spawn_app().await;
    let url = unsubscribe_url(&app, "dave@example.org").await;
    let clicks = (0..20).map(|_| {
        let (client, url) = (app.client.clone(), url.clone());
        async move {
            client
                .post(&url)
                .body("List-Unsubscribe=One-Click")
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    });
    assert_eq!(futures_util::future::join_all(clicks).await, [200; 20]);
    use newsletter::db::schema::subscriber_events::dsl as e;
    let left: i64 = app.query(|c| {
        e::subscriber_events
            .filter(e::kind.eq("unsubscribed"))
            .count()
            .get_result(c)
    });
    assert_eq!(left, 1);
}
