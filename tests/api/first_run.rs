//! A first run as the README tells it: `cargo run` with no settings of one's own. Links point to
//! where the service is served, and the outbox holds each mail as `.eml` and as a page.

use newsletter::configuration::Transport;

use crate::helpers::spawn_app_with;

#[tokio::test]
async fn without_a_base_url_links_point_to_the_port_actually_served() {
    let app = spawn_app_with(|s| {
        s.server.port = 0;
        s.server.base_url = String::new();
    })
    .await;
    assert!(!app.address.ends_with(":0"));
    app.signup("first.run@example.org").await;
    let mail = app
        .smtp
        .wait_for("first.run@example.org", 1)
        .await
        .remove(0);
    let link = mail.link("/subscriptions/confirm");
    assert!(
        link.starts_with(&format!("{}/subscriptions/confirm?token=", app.address)),
        "{link} is served at {}",
        app.address
    );
    let page = app.get("/subscribe").await.text().await.unwrap();
    assert!(
        page.contains(&app.address.replace('/', "&#x2f;")),
        "the form posts to the port served: {page}"
    );
}

#[tokio::test]
async fn the_outbox_holds_each_mail_as_eml_and_as_a_page_whose_link_confirms() {
    let outbox = tempfile::tempdir().unwrap();
    let dir = outbox.path().to_path_buf();
    let app = spawn_app_with(|s| {
        s.mail.transport = Transport::Outbox;
        s.mail.outbox.dir = dir.clone();
    })
    .await;
    app.signup("outbox@example.org").await;
    let eml = loop {
        let mails: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .collect();
        if let Some(mail) = mails.into_iter().next() {
            break mail;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let html = std::fs::read_to_string(eml.with_extension("html")).expect("a page beside the .eml");
    assert!(
        html.contains("<html") || html.contains("<table"),
        "a page: {html}"
    );
    // The link as a browser reads it from the page (quoted-printable decoded, entities undone).
    let link = html
        .split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(|href| href.replace("&amp;", "&"))
        .find(|href| href.contains("/subscriptions/confirm?token="))
        .unwrap_or_else(|| panic!("a confirmation link in {html}"));
    assert_eq!(app.press_confirm(&link).await.status().as_u16(), 200);
    assert_eq!(
        app.subscriber_status("outbox@example.org").as_deref(),
        Some("confirmed")
    );
}
