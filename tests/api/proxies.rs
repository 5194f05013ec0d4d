//! Client addresses cannot be forged: forwarded headers count only from trusted proxies.

use diesel::prelude::*;
use newsletter::db::schema::subscriber_events::dsl as e;

use crate::helpers::{TestApp, spawn_app_with};

fn ledger_ips(app: &TestApp) -> Vec<Option<String>> {
    app.query(|c| {
        e::subscriber_events
            .filter(e::kind.eq("subscribed"))
            .order(e::id)
            .select(e::ip)
            .load(c)
    })
}

async fn signup_via(app: &TestApp, base: &str, email: &str, header: (&str, &str)) -> u16 {
    app.client
        .post(format!("{base}/subscriptions"))
        .header(header.0, header.1)
        .json(&serde_json::json!({ "email": email }))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn forwarded_headers_from_a_peer_that_is_no_trusted_proxy_are_ignored() {
    let app = spawn_app_with(|s| s.signup.rate_limit_per_minute = 3).await;
    let mut statuses = Vec::new();
    for i in 0..4 {
        let forged = format!("203.0.113.{i}");
        let email = format!("r{i}@example.org");
        statuses.push(signup_via(&app, &app.address, &email, ("X-Forwarded-For", &forged)).await);
    }
    assert_eq!(
        statuses,
        [202, 202, 202, 429],
        "one client, whatever it claims"
    );
    assert!(
        ledger_ips(&app)
            .iter()
            .all(|ip| ip.as_deref() == Some("127.0.0.1"))
    );
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_client_is_the_rightmost_address_that_is_not_a_proxy() {
    let app = spawn_app_with(|s| {
        s.signup.rate_limit_per_minute = 3;
        s.server.trusted_proxies = vec![
            "127.0.0.1/32".parse().unwrap(),
            "10.0.0.0/8".parse().unwrap(),
        ];
    })
    .await;
    let base = app.address.clone();
    let cases = [
        ("X-Forwarded-For", "1.2.3.4, 203.0.113.9", "203.0.113.9"),
        ("X-Forwarded-For", "203.0.113.9, 10.1.2.3", "203.0.113.9"),
        (
            "Forwarded",
            r#"for="[2001:db8:cafe::17]:4711";proto=https"#,
            "2001:db8:cafe::17",
        ),
        ("X-Forwarded-For", "::ffff:198.51.100.20", "198.51.100.20"),
    ];
    for (i, (name, value, _)) in cases.iter().enumerate() {
        let status = signup_via(&app, &base, &format!("p{i}@example.org"), (name, value)).await;
        assert_eq!(status, 202, "{value}");
    }
    let expected: Vec<Option<String>> = cases
        .iter()
        .map(|(_, _, ip)| Some(ip.to_string()))
        .collect();
    assert_eq!(ledger_ips(&app), expected);

    // 203.0.113.9 has used two of its three; forging the left part does not give it more.
    assert_eq!(
        signup_via(
            &app,
            &base,
            "x1@example.org",
            ("X-Forwarded-For", "9.9.9.9, 203.0.113.9")
        )
        .await,
        202
    );
    assert_eq!(
        signup_via(
            &app,
            &base,
            "x2@example.org",
            ("X-Forwarded-For", "8.8.8.8, 203.0.113.9")
        )
        .await,
        429
    );
    assert_eq!(
        signup_via(
            &app,
            &base,
            "x3@example.org",
            ("X-Forwarded-For", "203.0.113.10")
        )
        .await,
        202,
        "others are not held up"
    );
}

#[tokio::test]
async fn the_retired_key_still_trusts_a_proxy_on_loopback_and_warns_with_the_new_name() {
    let app = spawn_app_with(|_| {}).await;
    let old = app.serve_process(&[("NEWSLETTER__SERVER__TRUST_FORWARDED_FOR", "true")]);
    app.until_healthy(&old.base).await;
    assert_eq!(
        signup_via(
            &app,
            &old.base,
            "old@example.org",
            ("X-Forwarded-For", "203.0.113.77")
        )
        .await,
        202
    );
    let log = old.stop();
    assert!(
        log.contains("server.trust_forwarded_for is replaced by server.trusted_proxies"),
        "{log}"
    );

    // The new key, as a comma-separated list from the environment.
    let new = app.serve_process(&[(
        "NEWSLETTER__SERVER__TRUSTED_PROXIES",
        "10.0.0.0/8,127.0.0.1",
    )]);
    app.until_healthy(&new.base).await;
    assert_eq!(
        signup_via(
            &app,
            &new.base,
            "new@example.org",
            ("X-Forwarded-For", "198.51.100.5")
        )
        .await,
        202
    );
    new.stop();
    assert_eq!(
        ledger_ips(&app),
        [
            Some("203.0.113.77".to_string()),
            Some("198.51.100.5".to_string())
        ]
    );

    let bad = app
        .command(&["migrate"])
        .env(
            "NEWSLETTER__SERVER__TRUSTED_PROXIES",
            "10.0.0.0/8,proxy.internal",
        )
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("server.trusted_proxies") && stderr.contains("proxy.internal"),
        "{stderr}"
    );
}
