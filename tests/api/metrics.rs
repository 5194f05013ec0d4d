//! `GET /metrics`: after a known flow (signups, a confirmation, a digest, an unsubscribe, a
//! bounce that came back) Prometheus reads exactly those numbers; without the token it reads
//! nothing, and with metrics off there is no such path.

use crate::helpers::{spawn_app, spawn_app_with, spawn_app_without_worker};

/// The value of the line that starts with `name` (labels included) in a scrape.
fn value(scrape: &str, name: &str) -> f64 {
    scrape
        .lines()
        .find(|line| line.starts_with(name) && line[name.len()..].starts_with(' '))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in:\n{scrape}"))
}

#[tokio::test]
async fn a_scrape_after_a_known_flow_reads_its_numbers() {
    let app = spawn_app_with(|s| {
        s.metrics.enabled = true;
        s.metrics.token = "scrape-token".to_string().into();
    })
    .await;
    // Two signups, one confirmed (its welcome mail too), a digest to the one, who then leaves.
    app.signup("pending@example.org").await;
    let confirmation = app.confirmed_subscriber("reader@example.org").await;
    drop(confirmation);
    app.smtp.wait_for("pending@example.org", 1).await;
    app.smtp.wait_for("reader@example.org", 2).await;
    let token = app.staff_token();
    let digest = app.queued_digest(&token).await;
    app.wait_until_sent(&token, digest).await;
    let copy = app.smtp.wait_for("reader@example.org", 3).await.remove(2);
    // Twice: the second click changes nothing and counts nothing.
    for _ in 0..2 {
        crate::helpers::press_button(&app.client, &copy.link("/unsubscribe"), "Unsubscribe").await;
    }
    // A bounce for the pending address, read by the pipe.
    app.seed_people(&[("userunknown@bouncehammer.jp", None)]);
    let raw = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/bounces/lhost-sendmail-01.eml"
    ))
    .unwrap();
    newsletter::bounces::process(&app.db, &app.settings, None, &raw, None)
        .await
        .unwrap();

    let scrape = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth("scrape-token")
        .send()
        .await
        .unwrap();
    assert_eq!(scrape.status().as_u16(), 200);
    assert!(
        scrape.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("openmetrics-text")
    );
    let scrape = scrape.text().await.unwrap();
    assert_eq!(value(&scrape, "newsletter_signups_total"), 2.0);
    assert_eq!(value(&scrape, "newsletter_confirmations_total"), 1.0);
    assert_eq!(value(&scrape, "newsletter_unsubscribes_total"), 1.0);
    let sent = |kind: &str| {
        value(
            &scrape,
            &format!("newsletter_deliveries_total{{kind=\"{kind}\",outcome=\"sent\"}}"),
        )
    };
    assert_eq!(
        (sent("confirmation"), sent("welcome"), sent("digest")),
        (2.0, 1.0, 1.0)
    );
    assert_eq!(value(&scrape, "newsletter_smtp_seconds_count"), 4.0);
    assert_eq!(value(&scrape, "newsletter_queue_depth"), 0.0);
    assert_eq!(value(&scrape, "newsletter_queue_oldest_due_seconds"), 0.0);
    assert_eq!(
        value(&scrape, "newsletter_inbound_reports{class=\"hard\"}"),
        1.0
    );

    // Without the token: 401.
    let anonymous = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
}

#[tokio::test]
async fn without_metrics_enabled_there_is_no_such_path() {
    let app = spawn_app().await;
    assert!(!app.settings.metrics.enabled, "off by default");
    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 404);
}

/// The queue's depth and its oldest due mail count both the mail people wait for and a
/// digest's, while it sends and while it is paused (the two are read from different indexes);
/// a cancelled digest's mail is no longer waiting.
#[tokio::test]
async fn queue_depth_and_the_oldest_due_count_confirmations_and_digests() {
    use diesel::prelude::*;
    use newsletter::db::schema::deliveries::dsl as d;
    let app = spawn_app_without_worker(|s| {
        s.metrics.enabled = true;
        s.metrics.token = "scrape-token".to_string().into();
    })
    .await;
    let scrape = || async {
        app.client
            .get(app.url("/metrics"))
            .bearer_auth("scrape-token")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let backdate = |kind: &'static str, seconds: i64| {
        app.query(|c| {
            let (id, due): (i64, chrono::NaiveDateTime) = d::deliveries
                .filter(d::kind.eq(kind))
                .select((d::id, d::next_attempt_at))
                .order(d::id)
                .first(c)?;
            diesel::update(d::deliveries.find(id))
                .set(d::next_attempt_at.eq(due - chrono::Duration::seconds(seconds)))
                .execute(c)
        })
    };
    // No worker runs: two confirmations and a digest to three readers stay queued.
    app.signup("one@example.org").await;
    app.signup("two@example.org").await;
    app.seed_confirmed("reader", 3);
    let token = app.staff_token();
    let digest = app.queued_digest(&token).await;
    backdate("confirmation", 60);
    backdate("digest", 600);

    let now = scrape().await;
    assert_eq!(value(&now, "newsletter_queue_depth"), 5.0);
    let oldest = value(&now, "newsletter_queue_oldest_due_seconds");
    assert!((600.0..660.0).contains(&oldest), "{oldest}");

    // Paused, its mail still waits; cancelled, it is skipped.
    for (action, depth) in [("pause", 5.0), ("cancel", 2.0)] {
        let path = format!("/digests/{digest}/{action}");
        let response = app.admin_post(&token, &path, serde_json::json!({})).await;
        assert_eq!(response.status().as_u16(), 200, "{action}");
        assert_eq!(
            value(&scrape().await, "newsletter_queue_depth"),
            depth,
            "{action}"
        );
    }
    let oldest = value(&scrape().await, "newsletter_queue_oldest_due_seconds");
    assert!((60.0..120.0).contains(&oldest), "{oldest}");

    // Mail put off to later is queued but not due: it counts in the depth, not in the age.
    let later = chrono::Utc::now().naive_utc() + chrono::Duration::hours(1);
    app.query(|c| {
        diesel::update(d::deliveries.filter(d::kind.eq("confirmation")))
            .set(d::next_attempt_at.eq(later))
            .execute(c)
    });
    let put_off = scrape().await;
    assert_eq!(value(&put_off, "newsletter_queue_depth"), 2.0);
    assert_eq!(value(&put_off, "newsletter_queue_oldest_due_seconds"), 0.0);
}
