//! The clinic's own face on every page and mail: its name, logo and colour, a way back to its
//! site, and the footer the law wants (postal address, privacy notice). Digests do not go out
//! without a postal address.

use crate::helpers::{TestApp, spawn_app_with};

async fn clinic() -> TestApp {
    spawn_app_with(|s| {
        s.site.name = "The Spine Clinic".into();
        s.site.url = "https://clinic.example/".into();
        s.site.postal_address = "12 Harley Street\nLondon W1G 9PF".into();
        s.site.privacy_url = "https://clinic.example/privacy".into();
        s.site.logo_url = "https://clinic.example/logo.png".into();
        s.site.accent_color = "#7a1f5c".into();
    })
    .await
}

#[tokio::test]
async fn every_public_page_shows_the_clinic_its_footer_and_a_way_back() {
    let app = clinic().await;
    app.signup("carol@example.org").await;
    let mail = app.smtp.wait_for("carol@example.org", 1).await.remove(0);
    let pages = [
        "/subscribe".to_string(),
        "/subscribe/thanks".to_string(),
        mail.link("/subscriptions/confirm"),
        "/unsubscribe?token=forged".to_string(),
        "/no/such/page".to_string(),
    ];
    for page in pages {
        let response = app
            .client
            .get(app.url(&page))
            .header("Accept", "text/html")
            .send()
            .await
            .unwrap();
        let html = response.text().await.unwrap().replace("&#x2f;", "/");
        for expected in [
            "12 Harley Street, London W1G 9PF",
            "<a href=\"https://clinic.example/\">Back to clinic.example</a>",
            "<a href=\"https://clinic.example/privacy\">Privacy</a>",
            "src=\"https://clinic.example/logo.png\" alt=\"The Spine Clinic\"",
            "background: #7a1f5c",
        ] {
            assert!(html.contains(expected), "{page} lacks {expected}:\n{html}");
        }
    }
}

#[tokio::test]
async fn every_mail_carries_the_postal_address_and_the_privacy_notice() {
    let app = clinic().await;
    app.confirmed_subscriber("dave@example.org").await;
    let mails = app.smtp.wait_for("dave@example.org", 2).await;
    let token = app.staff_token();
    let id = app.queued_digest(&token).await;
    app.wait_until_sent(&token, id).await;
    let mails: Vec<_> = mails
        .into_iter()
        .chain(
            app.smtp
                .wait_for("dave@example.org", 3)
                .await
                .into_iter()
                .skip(2),
        )
        .collect();
    assert_eq!(mails.len(), 3, "confirmation, welcome, digest");
    for mail in &mails {
        let (text, html) = (mail.text(), mail.html().replace("&#x2f;", "/"));
        assert!(
            text.contains("The Spine Clinic, 12 Harley Street, London W1G 9PF"),
            "{}: {text}",
            mail.subject()
        );
        assert!(text.contains("How we handle your data: https://clinic.example/privacy"));
        assert!(html.contains("12 Harley Street, London W1G 9PF"), "{html}");
        assert!(html.contains("href=\"https://clinic.example/privacy\""));
        assert!(html.contains("alt=\"The Spine Clinic\""));
    }
}

#[tokio::test]
async fn a_digest_is_not_sent_without_a_postal_address_and_api_cli_and_preview_say_why() {
    let app = spawn_app_with(|s| s.site.postal_address = "  ".into()).await;
    app.confirmed_subscriber("erin@example.org").await;
    let token = app.staff_token();
    let id = app.draft_digest(&token).await;

    let (status, body) = app.send_digest(&token, id).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("postal address"),
        "{body}"
    );
    let preview = app
        .admin_get(&token, &format!("/digests/{id}/preview"))
        .await;
    assert_eq!(preview.status().as_u16(), 200);
    let warning = preview.headers()["newsletter-warning"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(warning.contains("postal address"), "{warning}");

    let cli = app
        .command(&["digest", "send", &id.to_string()])
        .env("NEWSLETTER__SITE__POSTAL_ADDRESS", "")
        .output()
        .unwrap();
    assert!(!cli.status.success());
    let stderr = String::from_utf8_lossy(&cli.stderr);
    assert!(stderr.contains("postal address"), "{stderr}");
    assert!(app.delivery_statuses("digest").is_empty(), "nothing queued");

    // Set, the same draft goes out.
    let cli = app
        .command(&["digest", "send", &id.to_string()])
        .env(
            "NEWSLETTER__SITE__POSTAL_ADDRESS",
            "1 Example Street, Springfield",
        )
        .output()
        .unwrap();
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    assert_eq!(app.delivery_statuses("digest").len(), 1);
}
