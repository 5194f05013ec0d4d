//! What the SMTP server does wrong, and what becomes of the mail: nothing is lost.

use std::time::{Duration, Instant};

use diesel::prelude::*;
use newsletter::db::schema::deliveries::dsl as d;

use crate::helpers::{DroppingSmtp, TestApp, spawn_app, spawn_app_with};

/// (status, attempts, last_error) of the only confirmation, once `done` holds or 20 s passed.
async fn confirmation_when(
    app: &TestApp,
    done: impl Fn(&str) -> bool,
) -> (String, i32, Option<String>) {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let row: (String, i32, Option<String>) = app.query(|c| {
            d::deliveries
                .filter(d::kind.eq("confirmation"))
                .select((d::status, d::attempts, d::last_error))
                .first(c)
        });
        if done(&row.0) || Instant::now() > end {
            return row;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_connection_dropped_mid_data_is_retried_and_the_mail_arrives_once() {
    let flaky = DroppingSmtp::start(2);
    let app = spawn_app_with(|s| s.mail.smtp.port = flaky.port).await;
    app.signup("alice@example.org").await;
    let (status, attempts, _) = confirmation_when(&app, |s| s == "sent").await;
    assert_eq!((status.as_str(), attempts), ("sent", 3));
    assert_eq!(flaky.accepted.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_421_closing_answer_is_retried() {
    let app = spawn_app().await;
    app.smtp.refuse(
        "bob@example.org",
        421,
        "4.3.2 service shutting down",
        Some(1),
    );
    app.signup("bob@example.org").await;
    let (status, attempts, _) = confirmation_when(&app, |s| s == "sent").await;
    assert_eq!((status.as_str(), attempts), ("sent", 2));
    assert_eq!(app.smtp.messages_to("bob@example.org").len(), 1);
}

#[tokio::test]
async fn a_552_is_a_permanent_failure_but_not_a_bounce() {
    let app = spawn_app().await;
    app.smtp
        .refuse("carol@example.org", 552, "5.2.2 mailbox full", None);
    app.signup("carol@example.org").await;
    let (status, attempts, error) = confirmation_when(&app, |s| s == "failed").await;
    assert_eq!((status.as_str(), attempts), ("failed", 1));
    assert!(error.unwrap().contains("552"));
    assert_eq!(
        app.subscriber_status("carol@example.org").as_deref(),
        Some("pending")
    );
}

#[tokio::test]
async fn a_550_without_an_enhanced_code_fails_the_mail_but_proves_nothing_about_the_mailbox() {
    let app = spawn_app().await;
    app.smtp
        .refuse("dave@example.org", 550, "Mailbox unavailable", None);
    app.signup("dave@example.org").await;
    let (status, attempts, _) = confirmation_when(&app, |s| s == "failed").await;
    assert_eq!((status.as_str(), attempts), ("failed", 1));
    assert_eq!(
        app.subscriber_status("dave@example.org").as_deref(),
        Some("pending")
    );
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_and_the_mail_is_retried_elsewhere_in_time() {
    // A listener that accepts and then says nothing at all.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let app = spawn_app_with(|s| {
        s.mail.smtp.port = port;
        s.mail.smtp.timeout_seconds = 1;
        s.delivery.max_attempts = 2;
    })
    .await;
    app.signup("erin@example.org").await;
    let (status, attempts, error) = confirmation_when(&app, |s| s == "failed").await;
    assert_eq!((status.as_str(), attempts), ("failed", 2));
    assert!(error.unwrap().contains("timed out"));
    assert_eq!(app.count_subscribers(), 1, "the signup itself is kept");
    drop(silent);
}

#[tokio::test]
async fn a_refused_connection_is_retried_with_growing_delays_up_to_max_attempts() {
    let closed = crate::helpers::ClosedPort::new();
    let app = spawn_app_with(|s| {
        s.mail.smtp.port = closed.port;
        s.delivery.max_attempts = 3;
    })
    .await;
    app.signup("frank@example.org").await;
    let started = Instant::now();
    let (status, attempts, error) = confirmation_when(&app, |s| s == "failed").await;
    assert_eq!((status.as_str(), attempts), ("failed", 3), "{error:?}");
    assert!(error.unwrap().contains("connecting"));
    // Backoff of 1 s then 2 s before the third try.
    assert!(started.elapsed() >= Duration::from_secs(3));
}

/// (delivery status, failure cause, subscriber status) of `email`'s confirmation once failed.
async fn failed_confirmation(app: &TestApp, email: &str) -> (String, Option<String>, String) {
    let id = app.subscriber_id(email);
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let row: (String, Option<String>) = app.query(move |c| {
            d::deliveries
                .filter(d::subscriber_id.eq(id))
                .filter(d::kind.eq("confirmation"))
                .select((d::status, d::failure))
                .first(c)
        });
        if row.0 == "failed" || Instant::now() > end {
            return (row.0, row.1, app.subscriber_status(email).unwrap());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn only_a_recipient_stage_no_such_mailbox_marks_a_subscriber_bounced() {
    let app = spawn_app().await;
    let cases = [
        (
            "gone@example.org",
            550,
            "5.1.1 <gone@example.org>: Recipient address rejected: User unknown",
            "bounce",
            "bounced",
        ),
        (
            "moved@example.org",
            550,
            "5.1.10 RESOLVER.ADR.RecipientNotFound; not found",
            "bounce",
            "bounced",
        ),
        (
            "relay@example.org",
            554,
            "5.7.1 <relay@example.org>: Relay access denied",
            "sender",
            "pending",
        ),
        (
            "policy@example.org",
            550,
            "5.7.1 Service unavailable; client host blocked using Spamhaus",
            "sender",
            "pending",
        ),
        (
            "sender@example.org",
            553,
            "5.1.8 <news@localhost>: Sender address rejected: Domain not found",
            "sender",
            "pending",
        ),
        (
            "syntax@example.org",
            550,
            "5.1.7 bad sender mailbox address syntax",
            "sender",
            "pending",
        ),
        (
            "bare@example.org",
            550,
            "Mailbox unavailable",
            "recipient",
            "pending",
        ),
        (
            "full@example.org",
            552,
            "5.2.2 Mailbox full",
            "recipient",
            "pending",
        ),
    ];
    for (email, code, message, _, _) in cases {
        app.smtp.refuse(email, code, message, None);
        assert_eq!(app.signup(email).await.status().as_u16(), 202);
    }
    for (email, _, _, failure, subscriber) in cases {
        let (status, cause, now) = failed_confirmation(&app, email).await;
        assert_eq!(
            (status.as_str(), cause.as_deref(), now.as_str()),
            ("failed", Some(failure), subscriber),
            "{email}"
        );
    }
    // The ledger names the evidence of a bounce.
    use newsletter::db::schema::subscriber_events::dsl as e;
    let evidence: Vec<Option<String>> = app.query(|c| {
        e::subscriber_events
            .filter(e::kind.eq("bounced"))
            .select(e::detail)
            .load(c)
    });
    assert_eq!(evidence.len(), 2);
    assert!(
        evidence
            .iter()
            .all(|d| d.as_deref().is_some_and(|d| d.contains("5.1.")))
    );
}

#[tokio::test]
async fn refusals_at_mail_from_or_after_the_message_fail_the_mail_and_leave_the_subscriber_alone() {
    for (stage, reply) in [
        (
            "MAIL FROM",
            (550, "5.1.1 mailbox for <news@localhost> unknown"),
        ),
        ("the message", (550, "5.1.1 user unknown")),
        ("the message", (554, "5.7.1 Message rejected as spam")),
    ] {
        let app = spawn_app().await;
        match stage {
            "MAIL FROM" => app.smtp.answer_mail_from(Some(reply)),
            _ => app.smtp.answer_data_end(Some(reply)),
        }
        app.signup("reader@example.org").await;
        let (status, cause, subscriber) = failed_confirmation(&app, "reader@example.org").await;
        assert_eq!(
            (status.as_str(), cause.as_deref(), subscriber.as_str()),
            ("failed", Some("sender"), "pending"),
            "{reply:?} at {stage}"
        );
    }
}

#[tokio::test]
async fn after_a_refusal_the_connection_is_reset_and_the_next_mail_goes_through() {
    let app = spawn_app_with(|s| s.delivery.concurrency = 1).await;
    app.smtp
        .refuse("first@example.org", 550, "5.1.1 no such user", None);
    app.signup("first@example.org").await;
    failed_confirmation(&app, "first@example.org").await;
    app.signup("second@example.org").await;
    assert_eq!(app.smtp.wait_for("second@example.org", 1).await.len(), 1);
}
