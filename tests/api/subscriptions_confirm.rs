use diesel::prelude::*;
use newsletter::db::schema::{confirmation_tokens, subscriber_events};

use crate::helpers::{spawn_app, spawn_app_with};

#[tokio::test]
async fn following_the_link_confirms_and_a_welcome_mail_with_one_click_unsubscribe_follows() {
    let app = spawn_app().await;
    let confirmation = app.confirmed_subscriber("alice@example.org").await;
    assert_eq!(
        app.subscriber_status("alice@example.org").as_deref(),
        Some("confirmed")
    );
    let kinds: Vec<String> = app.query(|c| {
        subscriber_events::table
            .select(subscriber_events::kind)
            .order(subscriber_events::id)
            .load(c)
    });
    assert_eq!(kinds, ["subscribed", "confirmed"]);

    let mails = app.smtp.wait_for("alice@example.org", 2).await;
    let welcome = &mails[1];
    assert!(welcome.subject().starts_with("Welcome"));
    assert_eq!(
        welcome.header("List-Unsubscribe-Post").as_deref(),
        Some("List-Unsubscribe=One-Click")
    );
    let list_unsubscribe = welcome.header("List-Unsubscribe").unwrap();
    assert!(
        list_unsubscribe.contains(&format!("<{}/unsubscribe?token=", app.address)),
        "{list_unsubscribe}"
    );
    assert!(
        !list_unsubscribe.contains("mailto:"),
        "no mailto: unless mail.unsubscribe_mailto names a mailbox someone reads: {list_unsubscribe}"
    );
    assert!(welcome.header("List-Id").is_some());
    assert!(welcome.text().contains("/unsubscribe?token="));
    assert!(
        confirmation.header("List-Unsubscribe").is_none(),
        "nothing to leave before confirming"
    );
}

#[tokio::test]
async fn opening_the_link_only_shows_a_button_and_link_scanners_confirm_nobody() {
    let app = spawn_app().await;
    app.signup("scanned@example.org").await;
    let mail = app.smtp.wait_for("scanned@example.org", 1).await.remove(0);
    let link = mail.link("/subscriptions/confirm");
    // A mail scanner opens every link, with GET and HEAD, as often as it likes.
    for _ in 0..3 {
        let page = app.get(&link).await;
        assert_eq!(page.status().as_u16(), 200);
        let html = page.text().await.unwrap();
        assert!(html.contains(">Confirm my subscription</button>"), "{html}");
        assert!(
            html.contains("sc***@example.org"),
            "the address, masked: {html}"
        );
        assert!(
            !html.contains("scanned@example.org"),
            "never the whole address"
        );
        assert_eq!(
            app.client
                .head(&link)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16(),
            200
        );
    }
    assert_eq!(
        app.subscriber_status("scanned@example.org").as_deref(),
        Some("pending"),
        "opening the link confirms nothing"
    );
    let tokens_used: i64 = app.query(|c| {
        confirmation_tokens::table
            .filter(confirmation_tokens::used_at.is_not_null())
            .count()
            .get_result(c)
    });
    assert_eq!(tokens_used, 0, "nor spends the link");

    let confirmed = app.press_confirm(&link).await;
    assert_eq!(confirmed.status().as_u16(), 200);
    assert!(
        confirmed
            .text()
            .await
            .unwrap()
            .contains("You are subscribed")
    );
    assert_eq!(
        app.subscriber_status("scanned@example.org").as_deref(),
        Some("confirmed")
    );
}

#[tokio::test]
async fn following_the_link_again_says_already_confirmed() {
    let app = spawn_app().await;
    let confirmation = app.confirmed_subscriber("bob@example.org").await;
    let link = confirmation.link("/subscriptions/confirm");
    let response = app.get(&link).await;
    assert_eq!(response.status().as_u16(), 200);
    let page = response.text().await.unwrap();
    assert!(page.contains("already"));
    assert!(!page.contains("</button>"), "nothing left to press: {page}");
    // The button pressed again, from a page left open in another tab.
    let again = app
        .client
        .post(&link)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .send()
        .await
        .unwrap();
    assert_eq!(again.status().as_u16(), 200);
    assert!(again.text().await.unwrap().contains("already"));
    let confirmed: i64 = app.query(|c| {
        subscriber_events::table
            .filter(subscriber_events::kind.eq("confirmed"))
            .count()
            .get_result(c)
    });
    assert_eq!(confirmed, 1);
}

#[tokio::test]
async fn forged_malformed_and_missing_tokens_get_a_404_page_and_change_nothing() {
    let app = spawn_app().await;
    app.signup("eve@example.org").await;
    app.smtp.wait_for("eve@example.org", 1).await;
    for path in [
        "/subscriptions/confirm?token=forged0000000000000000000000",
        &format!("/subscriptions/confirm?token={}", "ab".repeat(32)),
        "/subscriptions/confirm",
        "/subscriptions/confirm/resend?token=forged0000000000000000000000",
    ] {
        if !path.contains("resend") {
            let response = app.get(path).await;
            assert_eq!(response.status().as_u16(), 404, "{path}");
            assert!(
                response
                    .text()
                    .await
                    .unwrap()
                    .contains("We do not know this link")
            );
        }
        let pressed = app.post_form(path, &[]).await;
        assert_eq!(pressed.status().as_u16(), 404, "POST {path}");
    }
    assert_eq!(
        app.subscriber_status("eve@example.org").as_deref(),
        Some("pending")
    );
    assert_eq!(
        app.delivery_statuses("confirmation").len(),
        1,
        "no new link"
    );
}

#[tokio::test]
async fn an_expired_link_gets_410_and_a_form_that_sends_a_new_one() {
    let app = spawn_app().await;
    app.signup("carol@example.org").await;
    let mail = app.smtp.wait_for("carol@example.org", 1).await.remove(0);
    app.query(|c| {
        diesel::update(confirmation_tokens::table)
            .set(
                confirmation_tokens::expires_at
                    .eq(chrono::Utc::now().naive_utc() - chrono::Duration::minutes(1)),
            )
            .execute(c)
    });
    let link = mail.link("/subscriptions/confirm");
    let response = app.get(&link).await;
    assert_eq!(response.status().as_u16(), 410);
    let page = response.text().await.unwrap();
    assert!(
        page.contains("expired") && page.contains("ca***@example.org"),
        "{page}"
    );
    assert!(
        !page.contains("carol@example.org"),
        "the page shows the address masked, not whole (a forwarded mail, a shared screen): {page}"
    );
    // Pressing the old confirm button (a page left open for days) gets the same page.
    let late = app.post_form(&link, &[]).await;
    assert_eq!(late.status().as_u16(), 410);
    assert_eq!(
        app.subscriber_status("carol@example.org").as_deref(),
        Some("pending")
    );

    // The page's button sends a fresh link, through the same queue and ledger as a signup.
    let action = crate::helpers::form_action(&page, "Send me a new link").expect("a resend button");
    let response = app.post_form(&action, &[]).await;
    assert_eq!(response.status().as_u16(), 303);
    let fresh = app.smtp.wait_for("carol@example.org", 2).await.remove(1);
    let sources: Vec<String> = app.query(|c| {
        subscriber_events::table
            .filter(subscriber_events::kind.eq("subscribed"))
            .order(subscriber_events::id)
            .select(subscriber_events::source)
            .load(c)
    });
    assert_eq!(sources, ["api", "expired-link"]);
    assert_eq!(
        app.press_confirm(&fresh.link("/subscriptions/confirm"))
            .await
            .status()
            .as_u16(),
        200
    );
    assert_eq!(
        app.subscriber_status("carol@example.org").as_deref(),
        Some("confirmed")
    );
}

#[tokio::test]
async fn no_welcome_mail_when_it_is_turned_off() {
    let app = spawn_app_with(|s| s.signup.welcome_email = false).await;
    app.confirmed_subscriber("dave@example.org").await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(app.smtp.messages_to("dave@example.org").len(), 1);
    assert!(app.delivery_statuses("welcome").is_empty());
}

#[tokio::test]
async fn twenty_simultaneous_clicks_on_one_link_confirm_once_and_welcome_once() {
    let app = spawn_app().await;
    app.signup("clicker@example.org").await;
    let mail = app.smtp.wait_for("clicker@example.org", 1).await.remove(0);
    let link = mail.link("/subscriptions/confirm");
    let clicks = (0..20).map(|_| {
        let (client, link) = (app.client.clone(), link.clone());
        async move {
            client
                .post(&link)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    });
    let statuses = futures_util::future::join_all(clicks).await;
    assert_eq!(statuses, [200; 20]);
    let confirmed: i64 = app.query(|c| {
        subscriber_events::table
            .filter(subscriber_events::kind.eq("confirmed"))
            .count()
            .get_result(c)
    });
    assert_eq!(confirmed, 1);
    assert_eq!(
        app.delivery_statuses("welcome").len(),
        1,
        "one welcome mail"
    );
}
