use std::time::Duration;

use diesel::prelude::*;
use newsletter::db::schema::{confirmation_tokens, subscriber_events};

use crate::helpers::{ClosedPort, TestSmtp, spawn_app, spawn_app_with};

#[tokio::test]
async fn a_json_signup_answers_202_and_a_confirmation_arrives_over_smtp() {
    let app = spawn_app().await;
    let response = app
        .post_json(
            "/subscriptions",
            serde_json::json!({"email": "alice@example.org", "name": "Alice"}),
        )
        .await;
    assert_eq!(response.status().as_u16(), 202);
    assert_eq!(
        response.json::<serde_json::Value>().await.unwrap(),
        serde_json::json!({"status": "pending"})
    );

    let mails = app.smtp.wait_for("alice@example.org", 1).await;
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert!(mail.subject().contains("confirm"), "{}", mail.subject());
    assert_eq!(
        mail.content_types(),
        ["multipart/alternative", "text/plain", "text/html"]
    );
    assert!(mail.text().contains("Hello Alice"));
    assert!(
        mail.link("/subscriptions/confirm?token=")
            .starts_with(&app.address)
    );
    assert!(mail.html().contains("/subscriptions/confirm?token="));
    let message_id = mail.header("Message-ID").unwrap();
    assert!(message_id.ends_with("@localhost>"), "{message_id}");
    assert_eq!(
        app.subscriber_status("alice@example.org").as_deref(),
        Some("pending")
    );
}

#[tokio::test]
async fn a_form_signup_redirects_to_a_thanks_page_in_the_sites_name() {
    let app = spawn_app_with(|s| s.site.name = "Clinic research".into()).await;
    let response = app
        .post_form(
            "/subscriptions",
            &[("email", "bob@example.org"), ("name", ""), ("website", "")],
        )
        .await;
    assert_eq!(response.status().as_u16(), 303);
    let location = response.headers()["location"].to_str().unwrap().to_string();
    assert!(location.ends_with("/subscribe/thanks"), "{location}");
    let page = app.get(&location).await.text().await.unwrap();
    assert!(page.contains("Check your inbox") && page.contains("Clinic research"));
    assert_eq!(app.smtp.wait_for("bob@example.org", 1).await.len(), 1);
}

#[tokio::test]
async fn the_signup_page_has_a_labelled_form_that_works_without_javascript() {
    let app = spawn_app_with(|s| s.site.name = "Clinic research".into()).await;
    let response = app.get("/subscribe").await;
    assert_eq!(response.status().as_u16(), 200);
    let page = response.text().await.unwrap();
    assert!(page.contains("<form method=\"post\""));
    assert!(page.contains("<label for=\"email\">") && page.contains("id=\"email\""));
    assert!(page.contains("name=\"viewport\""));
    assert!(page.contains("Clinic research"));
    assert!(!page.contains("<script"));
}

#[tokio::test]
async fn a_second_signup_with_the_same_address_sends_a_new_link_and_stores_one_subscriber() {
    let app = spawn_app().await;
    let first = app.signup("carol@example.org").await;
    let first = (first.status(), first.text().await.unwrap());
    let second = app.signup("carol@example.org").await;
    let second = (second.status(), second.text().await.unwrap());
    assert_eq!(
        first, second,
        "the answer must not tell that the address is known"
    );

    let mails = app.smtp.wait_for("carol@example.org", 2).await;
    assert_eq!(mails.len(), 2);
    assert_ne!(mails[0].link("/confirm"), mails[1].link("/confirm"));
    assert_eq!(app.count_subscribers(), 1);
    // Both links work until one is used.
    assert_eq!(
        app.press_confirm(&mails[0].link("/confirm"))
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
async fn a_pending_address_gets_at_most_three_links_an_hour() {
    let app = spawn_app().await;
    for _ in 0..5 {
        assert_eq!(app.signup("dave@example.org").await.status().as_u16(), 202);
    }
    let mails = app.smtp.wait_for("dave@example.org", 3).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(mails.len(), 3);
    assert_eq!(app.smtp.messages_to("dave@example.org").len(), 3);
}

#[tokio::test]
async fn a_confirmed_address_gets_the_same_answer_and_no_new_mail() {
    let app = spawn_app().await;
    app.confirmed_subscriber("erin@example.org").await;
    let welcome = app.smtp.wait_for("erin@example.org", 2).await;
    assert_eq!(welcome.len(), 2);
    let response = app.signup("erin@example.org").await;
    assert_eq!(response.status().as_u16(), 202);
    assert_eq!(
        response.json::<serde_json::Value>().await.unwrap()["status"],
        "pending"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.smtp.messages_to("erin@example.org").len(), 2);
    assert_eq!(
        app.subscriber_status("erin@example.org").as_deref(),
        Some("confirmed")
    );
}

#[tokio::test]
async fn bad_addresses_get_422_naming_the_field_and_store_nothing() {
    let app = spawn_app().await;
    let long = format!("{}@example.org", "a".repeat(250));
    for bad in [
        "not-an-email",
        "a@b@c.org",
        "x\r\nBcc: v@evil.org@example.org",
        "Alice <alice2@example.org>",
        "",
        " ",
        &long,
    ] {
        let response = app
            .post_json("/subscriptions", serde_json::json!({ "email": bad }))
            .await;
        assert_eq!(response.status().as_u16(), 422, "{bad:?}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert!(
            body["error"].as_str().unwrap().contains("email"),
            "{bad:?}: {body}"
        );
    }
    let response = app
        .post_json(
            "/subscriptions",
            serde_json::json!({ "name": "No address" }),
        )
        .await;
    assert_eq!(response.status().as_u16(), 422);
    let response = app
        .post_json(
            "/subscriptions",
            serde_json::json!({ "email": "ok@example.org", "name": "x".repeat(101) }),
        )
        .await;
    assert_eq!(response.status().as_u16(), 422);
    assert!(response.text().await.unwrap().contains("name"));
    assert_eq!(app.count_subscribers(), 0);
}

#[tokio::test]
async fn a_bad_address_in_the_form_shows_the_form_again_with_the_error_and_escaped_input() {
    let app = spawn_app().await;
    let response = app
        .post_form(
            "/subscriptions",
            &[("email", "<script>alert(1)</script>"), ("name", "Eve")],
        )
        .await;
    assert_eq!(response.status().as_u16(), 422);
    let page = response.text().await.unwrap();
    assert!(page.contains("role=\"alert\""));
    assert!(page.contains("&lt;script&gt;") && !page.contains("<script>alert"));
    assert!(page.contains("value=\"Eve\""));
}

#[tokio::test]
async fn oversized_bodies_other_content_types_and_broken_json_are_refused() {
    let app = spawn_app().await;
    let huge = format!("{{\"email\":\"{}@example.org\"}}", "a".repeat(100_000));
    let response = app
        .client
        .post(app.url("/subscriptions"))
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 413);
    // The rest of the body may still be on the wire: the connection is not used again (a
    // client that sent its next request on it met a closed connection, a flaky failure).
    assert_eq!(response.headers()["connection"], "close");
    assert!(response.text().await.unwrap().contains("error"));

    let response = app
        .client
        .post(app.url("/subscriptions"))
        .header("content-type", "text/plain")
        .body("email=x@example.org")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 415);

    let response = app
        .client
        .post(app.url("/subscriptions"))
        .header("content-type", "application/json")
        .body("{\"email\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 422);
    assert_eq!(app.count_subscribers(), 0);
}

#[tokio::test]
async fn a_filled_honeypot_gets_the_normal_answer_and_stores_nothing() {
    let app = spawn_app().await;
    let response = app
        .post_json(
            "/subscriptions",
            serde_json::json!({"email": "bot@example.org", "website": "http://spam.example"}),
        )
        .await;
    assert_eq!(response.status().as_u16(), 202);
    let response = app
        .post_form(
            "/subscriptions",
            &[("email", "bot2@example.org"), ("website", "x")],
        )
        .await;
    assert_eq!(response.status().as_u16(), 303);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.count_subscribers(), 0);
    assert!(app.smtp.all_messages().is_empty());
}

#[tokio::test]
async fn unicode_and_idn_addresses_are_accepted_and_stored_in_one_form() {
    let app = spawn_app().await;
    assert_eq!(
        app.signup("dörte@Bücher.example").await.status().as_u16(),
        202
    );
    assert_eq!(
        app.signup("dörte@xn--bcher-kva.example")
            .await
            .status()
            .as_u16(),
        202
    );
    assert_eq!(
        app.signup("Zoë.Test@EXAMPLE.org").await.status().as_u16(),
        202
    );
    assert_eq!(
        app.subscriber_status("dörte@bücher.example").as_deref(),
        Some("pending")
    );
    assert_eq!(
        app.subscriber_status("Zoë.Test@example.org").as_deref(),
        Some("pending")
    );
    assert_eq!(app.count_subscribers(), 2);
}

#[tokio::test]
async fn signups_over_the_per_address_rate_limit_get_429_with_retry_after() {
    let app = spawn_app_with(|s| s.signup.rate_limit_per_minute = 3).await;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for i in 0..5 {
        let response = app.signup(&format!("burst{i}@example.org")).await;
        statuses.push(response.status().as_u16());
        if response.status().as_u16() == 429 {
            retry_after = response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
            assert!(response.text().await.unwrap().contains("error"));
        }
    }
    assert_eq!(statuses, [202, 202, 202, 429, 429]);
    assert!(
        retry_after.is_some_and(|s| (1..=60).contains(&s)),
        "{retry_after:?}"
    );
    assert_eq!(
        app.count_subscribers(),
        3,
        "a limited signup stores nothing"
    );
}

#[tokio::test]
async fn the_consent_ledger_records_time_ip_user_agent_and_source() {
    let app = spawn_app().await;
    app.client
        .post(app.url("/subscriptions"))
        .header("user-agent", "ledger-test/1.0")
        .json(&serde_json::json!({"email": "frank@example.org"}))
        .send()
        .await
        .unwrap();
    let events: Vec<(String, Option<String>, Option<String>, String)> = app.query(|c| {
        subscriber_events::table
            .select((
                subscriber_events::kind,
                subscriber_events::ip,
                subscriber_events::user_agent,
                subscriber_events::source,
            ))
            .load(c)
    });
    assert_eq!(
        events,
        [(
            "subscribed".into(),
            Some("127.0.0.1".into()),
            Some("ledger-test/1.0".into()),
            "api".into()
        )]
    );
}

#[tokio::test]
async fn confirmation_tokens_are_stored_only_as_hashes_and_expire() {
    let app = spawn_app().await;
    app.signup("grace@example.org").await;
    let mail = app.smtp.wait_for("grace@example.org", 1).await.remove(0);
    let link = mail.link("/subscriptions/confirm");
    let token = link.split("token=").nth(1).unwrap().to_string();
    assert!(token.len() >= 32, "at least 128 random bits");
    let stored: Vec<(String, chrono::NaiveDateTime, chrono::NaiveDateTime)> = app.query(|c| {
        confirmation_tokens::table
            .select((
                confirmation_tokens::token_hash,
                confirmation_tokens::created_at,
                confirmation_tokens::expires_at,
            ))
            .load(c)
    });
    assert_eq!(stored.len(), 1);
    assert_ne!(stored[0].0, token);
    assert_eq!((stored[0].2 - stored[0].1).num_hours(), 48);
}

#[tokio::test]
async fn a_signup_while_smtp_is_down_is_accepted_and_the_confirmation_arrives_once_it_is_up() {
    let mut down = ClosedPort::new();
    let smtp_port = down.port;
    let app = spawn_app_with(|s| s.mail.smtp.port = smtp_port).await;
    assert_eq!(app.signup("late@example.org").await.status().as_u16(), 202);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let statuses = app.delivery_statuses("confirmation");
    assert_eq!(statuses.len(), 1);
    assert!(
        statuses[0] == "queued" || statuses[0] == "sending",
        "{statuses:?}"
    );

    let smtp = TestSmtp::start_on(down.release());
    let mails = smtp
        .wait_for_within("late@example.org", 1, Duration::from_secs(20))
        .await;
    assert_eq!(
        mails.len(),
        1,
        "the queued confirmation arrives after the outage"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.delivery_statuses("confirmation"), ["sent"]);
}

#[tokio::test]
async fn a_4xx_answer_is_retried_until_the_mail_goes_through() {
    let app = spawn_app().await;
    app.smtp
        .refuse("henry@example.org", 451, "4.3.0 try again later", Some(2));
    app.signup("henry@example.org").await;
    let mails = app
        .smtp
        .wait_for_within("henry@example.org", 1, Duration::from_secs(20))
        .await;
    assert_eq!(mails.len(), 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    use newsletter::db::schema::deliveries::dsl as d;
    let (status, attempts): (String, i32) =
        app.query(|c| d::deliveries.select((d::status, d::attempts)).first(c));
    assert_eq!((status.as_str(), attempts), ("sent", 3));
    // The Message-ID is the delivery's, the same on every try.
    assert_eq!(
        mails[0].header("Message-ID").as_deref(),
        Some("<confirmation.1@localhost>")
    );
}

#[tokio::test]
async fn a_4xx_answer_that_never_ends_fails_after_max_attempts() {
    let app = spawn_app_with(|s| s.delivery.max_attempts = 2).await;
    app.smtp
        .refuse("ivy@example.org", 451, "4.3.0 try again later", None);
    app.signup("ivy@example.org").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while app.delivery_statuses("confirmation") != ["failed"]
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    use newsletter::db::schema::deliveries::dsl as d;
    let (status, attempts, error): (String, i32, Option<String>) = app.query(|c| {
        d::deliveries
            .select((d::status, d::attempts, d::last_error))
            .first(c)
    });
    assert_eq!((status.as_str(), attempts), ("failed", 2));
    assert!(error.unwrap().contains("451"));
}

#[tokio::test]
async fn a_5xx_no_such_user_fails_at_once_and_marks_the_subscriber_bounced() {
    let app = spawn_app().await;
    app.smtp
        .refuse("ghost@example.org", 550, "5.1.1 no such user", None);
    app.signup("ghost@example.org").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while app.subscriber_status("ghost@example.org").as_deref() != Some("bounced")
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        app.subscriber_status("ghost@example.org").as_deref(),
        Some("bounced")
    );
    assert_eq!(app.delivery_statuses("confirmation"), ["failed"]);
    let kinds: Vec<String> = app.query(|c| {
        subscriber_events::table
            .select(subscriber_events::kind)
            .order(subscriber_events::id)
            .load(c)
    });
    assert_eq!(kinds, ["subscribed", "bounced"]);
}
