//! No secret reaches the logs: a full signup, confirmation and unsubscribe, with debug logging
//! on, leaves neither a token nor a full address in the service's log.

use std::time::Duration;

use crate::helpers::{press_button, spawn_app_without_worker};

#[tokio::test]
async fn the_log_of_a_signup_confirm_and_unsubscribe_holds_no_token_and_no_full_address() {
    let app = spawn_app_without_worker(|_| {}).await;
    let email = "alice.liddell@example.org";
    // The first try is refused with a reply that names the address, as servers do.
    app.smtp.refuse(
        email,
        451,
        "4.2.1 <alice.liddell@example.org>: Recipient address rejected: try again later",
        Some(1),
    );
    let service = app.serve_process(&[
        ("RUST_LOG", "debug"),
        ("NEWSLETTER__DELIVERY__RETRY_BASE_SECONDS", "1"),
        ("NEWSLETTER__DELIVERY__POLL_INTERVAL_MS", "50"),
    ]);
    let base = service.base.clone();
    app.until_healthy(&base).await;
    let signup = app
        .client
        .post(format!("{base}/subscriptions"))
        .json(&serde_json::json!({ "email": email, "name": "Alice" }))
        .send()
        .await
        .unwrap();
    assert_eq!(signup.status().as_u16(), 202);
    let confirmation = app.smtp.wait_for(email, 1).await.remove(0);
    let confirm_link = confirmation.link("/subscriptions/confirm");
    let confirmed = press_button(&app.client, &confirm_link, "Confirm my subscription").await;
    assert_eq!(confirmed.status().as_u16(), 200);
    let welcome = app.smtp.wait_for(email, 2).await.remove(1);
    let unsubscribe_link = welcome.link("/unsubscribe");
    assert_eq!(app.get(&unsubscribe_link).await.status().as_u16(), 200);
    let left = app.client.post(&unsubscribe_link).send().await.unwrap();
    assert_eq!(left.status().as_u16(), 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = service.stop();

    assert!(
        log.contains("/subscriptions/confirm"),
        "the request was logged:\n{log}"
    );
    assert!(
        log.contains("al***@example.org"),
        "addresses appear masked:\n{log}"
    );
    let token = |link: &str| link.split("token=").nth(1).unwrap().to_string();
    for secret in [
        token(&confirm_link),
        token(&unsubscribe_link),
        email.to_string(),
    ] {
        assert!(!log.contains(&secret), "{secret} is in the log:\n{log}");
    }
}
