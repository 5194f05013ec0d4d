use std::time::Duration;

use diesel::prelude::*;
use newsletter::db::schema::subscriber_events;

use crate::helpers::{FEED, TestApp, serve_feed, spawn_app, spawn_app_with};

fn digests_to(app: &TestApp, email: &str) -> usize {
    app.smtp
        .messages_to(email)
        .iter()
        .filter(|m| m.subject() == "Latest research")
        .count()
}

#[tokio::test]
async fn the_whole_staff_story_from_feed_to_one_digest_per_confirmed_subscriber() {
    let app = spawn_app_with(|s| {
        s.signup.welcome_email = false;
        s.site.url = "https://clinic.example".into();
        s.mail.unsubscribe_mailto = "unsubscribe@clinic.example".into();
    })
    .await;
    let token = app.staff_token();
    let confirmed: Vec<String> = (0..5).map(|i| format!("reader{i}@example.org")).collect();
    for email in &confirmed {
        app.confirmed_subscriber(email).await;
    }
    app.signup("pending@example.org").await;
    app.smtp.wait_for("pending@example.org", 1).await;
    let leaver = "leaver@example.org";
    app.confirmed_subscriber(leaver).await;

    // Feed import, then the same again: nothing new.
    let feed = serve_feed(FEED);
    let imported: serde_json::Value = app
        .admin_post(&token, "/feeds/import", serde_json::json!({ "url": feed }))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(imported, serde_json::json!({"imported": 2, "skipped": 0}));
    let again: serde_json::Value = app
        .admin_post(&token, "/feeds/import", serde_json::json!({ "url": feed }))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again, serde_json::json!({"imported": 0, "skipped": 2}));

    // Draft with the articles published since the last digest (none yet: all of them).
    let response = app.admin_post(&token, "/digests", serde_json::json!({"subject": "Latest research", "intro": "Two new **studies** this month."})).await;
    assert_eq!(response.status().as_u16(), 201);
    let created: serde_json::Value = response.json().await.unwrap();
    assert_eq!(created["status"], "draft");
    assert_eq!(created["articles"].as_array().unwrap().len(), 2);
    let id = created["id"].as_i64().unwrap();

    // Preview: HTML with both articles, feed HTML escaped, the intro's Markdown rendered.
    let html = app
        .admin_get(&token, &format!("/digests/{id}/preview"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("Prolotherapy after failed back surgery")
            && html.contains("PRP for sacroiliac joint pain")
    );
    assert!(html.contains("<strong>studies</strong>"));
    assert!(!html.contains("<b>results</b>"));
    assert!(html.contains("style="), "CSS is inlined");
    let text = app
        .admin_get(&token, &format!("/digests/{id}/preview?format=text"))
        .await
        .text()
        .await
        .unwrap();
    assert!(text.contains("https://clinic.example/prp-si-joint") && text.contains("Unsubscribe"));
    assert!(
        text.contains("subscribed to Our newsletter at https://clinic.example and confirmed"),
        "{text}"
    );

    // Test send: one copy now, marked as a test.
    let response = app
        .admin_post(
            &token,
            &format!("/digests/{id}/test"),
            serde_json::json!({"email": "editor@clinic.example"}),
        )
        .await;
    assert_eq!(response.status().as_u16(), 200);
    let test = app.smtp.wait_for("editor@clinic.example", 1).await;
    assert_eq!(test[0].subject(), "[Test] Latest research");

    // Someone leaves before the send.
    let leaver_welcome = app.smtp.messages_to(leaver);
    assert_eq!(leaver_welcome.len(), 1);
    app.query(|c| {
        use newsletter::db::schema::subscribers::dsl as s;
        diesel::update(s::subscribers.filter(s::email.eq(leaver)))
            .set(s::status.eq("unsubscribed"))
            .execute(c)
    });

    let (status, first) = app.send_digest(&token, id).await;
    assert_eq!((status, &first["queued"]), (202, &serde_json::json!(5)));
    let (status, second) = app.send_digest(&token, id).await;
    assert_eq!((status, &second["queued"]), (200, &serde_json::json!(0)));

    let status = app.wait_until_sent(&token, id).await;
    assert_eq!(status["status"], "sent");
    assert_eq!(
        (
            status["recipients"].as_i64(),
            status["sent"].as_i64(),
            status["failed"].as_i64(),
            status["queued"].as_i64()
        ),
        (Some(5), Some(5), Some(0), Some(0))
    );
    assert!(status["started_at"].is_string() && status["finished_at"].is_string());
    for email in &confirmed {
        assert_eq!(digests_to(&app, email), 1, "{email}");
    }
    assert_eq!(digests_to(&app, "pending@example.org"), 0);
    assert_eq!(digests_to(&app, leaver), 0);

    // The digest as it arrived: headers, both parts, the reader's own unsubscribe link.
    let mail = app
        .smtp
        .messages_to("reader1@example.org")
        .into_iter()
        .find(|m| m.subject() == "Latest research")
        .unwrap();
    assert_eq!(
        mail.content_types(),
        ["multipart/alternative", "text/plain", "text/html"]
    );
    assert!(
        mail.header("List-Id")
            .unwrap()
            .contains("<newsletter.localhost>")
    );
    assert_eq!(
        mail.header("List-Unsubscribe-Post").as_deref(),
        Some("List-Unsubscribe=One-Click")
    );
    let message_id = mail.header("Message-ID").unwrap();
    assert!(
        message_id.starts_with("<digest.") && message_id.ends_with("@localhost>"),
        "{message_id}"
    );
    let list_unsubscribe = mail.header("List-Unsubscribe").unwrap();
    assert!(list_unsubscribe.contains("<mailto:unsubscribe@clinic.example?subject=unsubscribe>"));
    let url = list_unsubscribe
        .split(['<', '>'])
        .find(|p| p.starts_with("http"))
        .unwrap()
        .to_string();
    assert!(
        mail.text().contains(&url),
        "the footer link is the header's link"
    );
    let response = app
        .client
        .post(&url)
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        app.subscriber_status("reader1@example.org").as_deref(),
        Some("unsubscribed")
    );

    // The next digest takes only what no sent digest held: nothing yet.
    let response = app
        .admin_post(&token, "/digests", serde_json::json!({"subject": "Next"}))
        .await;
    assert_eq!(response.status().as_u16(), 422);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("every article is in a digest that was sent already")
    );

    // An article dated before that send but added after it is news to the readers: the next
    // digest takes it (and only it), however old its date.
    let late = app
        .admin_post(
            &token,
            "/articles",
            serde_json::json!({
                "title": "Ozone injections: a 2019 review",
                "url": "https://clinic.example/ozone-review",
                "published_at": "2019-05-01T00:00:00Z",
            }),
        )
        .await;
    assert_eq!(
        late.status().as_u16(),
        201,
        "{}",
        late.text().await.unwrap()
    );
    let next = app
        .admin_post(&token, "/digests", serde_json::json!({"subject": "Next"}))
        .await;
    assert_eq!(next.status().as_u16(), 201);
    let next: serde_json::Value = next.json().await.unwrap();
    let titles: Vec<&str> = next["articles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["Ozone injections: a 2019 review"]);
}

#[tokio::test]
async fn the_staff_api_refuses_missing_wrong_and_revoked_tokens() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/admin/api/articles"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    assert!(response.json::<serde_json::Value>().await.unwrap()["error"].is_string());
    assert_eq!(
        app.admin_get("wrong", "/articles").await.status().as_u16(),
        401
    );
    assert_eq!(
        app.admin_post("wrong", "/digests/1/send", serde_json::json!({}))
            .await
            .status()
            .as_u16(),
        401
    );

    let mut conn = app.db.get().unwrap();
    let token = newsletter::db::staff_tokens::create_staff_token(&mut conn, "editor").unwrap();
    assert_eq!(
        app.admin_get(token.as_str(), "/articles")
            .await
            .status()
            .as_u16(),
        200
    );
    let tokens = newsletter::db::staff_tokens::list_staff_tokens(&mut conn).unwrap();
    assert!(tokens[0].last_used_at.is_some(), "use is recorded");
    assert_ne!(
        tokens[0].token_hash,
        token.as_str(),
        "only the hash is stored"
    );
    newsletter::db::staff_tokens::revoke_staff_token(&mut conn, "editor").unwrap();
    assert_eq!(
        app.admin_get(token.as_str(), "/articles")
            .await
            .status()
            .as_u16(),
        401
    );
}

#[tokio::test]
async fn articles_are_added_by_hand_listed_and_unique_by_url() {
    let app = spawn_app().await;
    let token = app.staff_token();
    let article = serde_json::json!({"title": "Prolotherapy", "url": "https://clinic.example/p", "summary": "S", "published_at": "2026-11-20T08:00:00Z"});
    let response = app.admin_post(&token, "/articles", article.clone()).await;
    assert_eq!(response.status().as_u16(), 201);
    assert_eq!(
        response.json::<serde_json::Value>().await.unwrap()["published_at"],
        "2026-11-20T08:00:00"
    );
    assert_eq!(
        app.admin_post(&token, "/articles", article)
            .await
            .status()
            .as_u16(),
        409
    );
    let bad = app
        .admin_post(
            &token,
            "/articles",
            serde_json::json!({"title": "", "url": "ftp://x"}),
        )
        .await;
    assert_eq!(bad.status().as_u16(), 422);
    let listed: serde_json::Value = app.admin_json(&token, "/articles").await;
    assert_eq!(listed["articles"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn feeds_that_cannot_be_fetched_or_read_are_clear_errors_and_import_nothing() {
    let app = spawn_app().await;
    let token = app.staff_token();
    let closed = crate::helpers::ClosedPort::new();
    let unreachable = format!("http://127.0.0.1:{}/feed.xml", closed.port);
    let not_a_feed = serve_feed("<html><body>Not a feed</body></html>");
    let cases = [
        (unreachable.as_str(), 502, "could not be fetched"),
        (not_a_feed.as_str(), 422, "RSS or Atom"),
        ("file:///etc/passwd", 422, "http(s) URL"),
    ];
    for (url, status, error) in cases {
        let response = app
            .admin_post(&token, "/feeds/import", serde_json::json!({ "url": url }))
            .await;
        assert_eq!(response.status().as_u16(), status, "{url}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert!(
            body["error"].as_str().unwrap().contains(error),
            "{url}: {body}"
        );
    }
    let listed: serde_json::Value = app.admin_json(&token, "/articles").await;
    assert!(listed["articles"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn digests_name_their_articles_or_a_date_and_bad_choices_get_422() {
    let app = spawn_app().await;
    let token = app.staff_token();
    assert_eq!(
        app.admin_post(&token, "/digests", serde_json::json!({"subject": "Empty"}))
            .await
            .status()
            .as_u16(),
        422
    );
    app.admin_post(
        &token,
        "/feeds/import",
        serde_json::json!({ "url": serve_feed(FEED) }),
    )
    .await;
    let created: serde_json::Value = app
        .admin_post(
            &token,
            "/digests",
            serde_json::json!({"subject": "Only one", "since": "2026-11-24"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(created["articles"].as_array().unwrap().len(), 1);
    let ids: Vec<i64> = vec![created["articles"][0]["id"].as_i64().unwrap()];
    let response = app
        .admin_post(
            &token,
            "/digests",
            serde_json::json!({"subject": "Picked", "article_ids": ids}),
        )
        .await;
    assert_eq!(response.status().as_u16(), 201);
    let response = app
        .admin_post(
            &token,
            "/digests",
            serde_json::json!({"subject": "Bad", "article_ids": [999]}),
        )
        .await;
    assert_eq!(response.status().as_u16(), 422);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("article 999 does not exist")
    );
    let response = app
        .admin_post(
            &token,
            "/digests",
            serde_json::json!({"subject": "Line\nbreak"}),
        )
        .await;
    assert_eq!(response.status().as_u16(), 422);
    let response = app.admin_get(&token, "/digests/999").await;
    assert_eq!(response.status().as_u16(), 404);
}

#[tokio::test]
async fn a_digest_bounce_marks_the_subscriber_and_a_4xx_is_retried() {
    let app = spawn_app().await;
    let token = app.staff_token();
    app.seed_confirmed("ok", 3);
    app.seed_confirmed("ghost", 1);
    app.seed_confirmed("busy", 1);
    app.smtp
        .refuse("ghost0@example.org", 550, "5.1.1 no such user", None);
    app.smtp
        .refuse("busy0@example.org", 451, "4.7.1 greylisted", Some(1));
    let id = app.queued_digest(&token).await;
    let status = app.wait_until_sent(&token, id).await;
    assert_eq!(
        (status["sent"].as_i64(), status["failed"].as_i64()),
        (Some(4), Some(1)),
        "{status}"
    );
    assert_eq!(
        digests_to(&app, "busy0@example.org"),
        1,
        "greylisted once, delivered on retry"
    );
    assert_eq!(
        app.subscriber_status("ghost0@example.org").as_deref(),
        Some("bounced")
    );
    let bounced: i64 = app.query(|c| {
        subscriber_events::table
            .filter(subscriber_events::kind.eq("bounced"))
            .count()
            .get_result(c)
    });
    assert_eq!(bounced, 1);
}

#[tokio::test]
async fn staff_list_subscribers_by_status_and_erase_a_person_for_good() {
    let app = spawn_app().await;
    let token = app.staff_token();
    app.seed_confirmed("c", 3);
    app.signup("pending@example.org").await;
    let listed: serde_json::Value = app
        .admin_json(&token, "/subscribers?status=confirmed")
        .await;
    assert_eq!(listed["total"], 3);
    assert!(listed["subscribers"].to_string().contains("c2@example.org"));
    assert_eq!(
        app.admin_get(&token, "/subscribers?status=nope")
            .await
            .status()
            .as_u16(),
        422
    );
    let page: serde_json::Value = app
        .admin_json(&token, "/subscribers?page=2&per_page=2")
        .await;
    assert_eq!(
        (
            page["total"].as_i64(),
            page["subscribers"].as_array().unwrap().len()
        ),
        (Some(4), 2)
    );

    let id = listed["subscribers"][0]["id"].as_i64().unwrap();
    let email = listed["subscribers"][0]["email"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/subscribers/{id}");
    let response = app.admin_delete(&token, &path).await;
    assert_eq!(response.status().as_u16(), 204);
    assert_eq!(app.subscriber_status(&email), None);
    let response = app.admin_delete(&token, &path).await;
    assert_eq!(response.status().as_u16(), 404);
    // Only an anonymous trace is left, and an import cannot bring them back.
    let traces: Vec<(Option<i64>, String, Option<String>)> = app.query(|c| {
        subscriber_events::table
            .filter(subscriber_events::kind.eq("erased"))
            .select((
                subscriber_events::subscriber_id,
                subscriber_events::kind,
                subscriber_events::ip,
            ))
            .load(c)
    });
    assert_eq!(traces, [(None, "erased".to_string(), None)]);
    let mut conn = app.db.get().unwrap();
    let people = vec![newsletter::db::subscribers::ImportedPerson::new(
        newsletter::domain::SubscriberEmail::parse(&email.to_uppercase()).unwrap(),
        None,
    )];
    let report = newsletter::db::subscribers::import_subscribers(
        &mut conn,
        &people,
        &newsletter::db::subscribers::WithoutStatus::Pending,
        "test",
    )
    .unwrap();
    assert_eq!((report.imported, report.suppressed), (0, 1));

    // Erasing someone with mail in the queue takes their deliveries too.
    app.smtp.wait_for("pending@example.org", 1).await;
    let pending = app.subscriber_id("pending@example.org");
    let response = app
        .admin_delete(&token, &format!("/subscribers/{pending}"))
        .await;
    assert_eq!(response.status().as_u16(), 204);
    let left: i64 = app.query(|c| {
        use newsletter::db::schema::deliveries::dsl as d;
        d::deliveries
            .filter(d::subscriber_id.eq(pending))
            .count()
            .get_result(c)
    });
    assert_eq!(left, 0);

    // Someone erased may sign up again themselves (double opt-in); erasing them a second time
    // works and leaves one suppression entry.
    assert_eq!(app.signup(&email).await.status().as_u16(), 202);
    let again = app.subscriber_id(&email);
    let response = app
        .admin_delete(&token, &format!("/subscribers/{again}"))
        .await;
    assert_eq!(response.status().as_u16(), 204);
    let suppressed: i64 = app.query(|c| {
        newsletter::db::schema::suppressions::table
            .count()
            .get_result(c)
    });
    assert_eq!(
        suppressed, 2,
        "one per erased address: {email} and pending@example.org"
    );
}

#[tokio::test]
async fn someone_who_unsubscribes_mid_send_gets_nothing_more() {
    let app = crate::helpers::spawn_app_without_worker(|_| {}).await;
    let token = app.staff_token();
    let readers = app.seed_confirmed("r", 4);
    let id = app.queued_digest(&token).await;
    app.query(|c| {
        use newsletter::db::schema::subscribers::dsl as s;
        diesel::update(s::subscribers.filter(s::email.eq(&readers[2])))
            .set(s::status.eq("unsubscribed"))
            .execute(c)
    });
    let worker = app.worker(|_| {});
    let status = app.wait_until_sent(&token, id).await;
    worker.stop().await;
    assert_eq!(
        (status["sent"].as_i64(), status["skipped"].as_i64()),
        (Some(3), Some(1)),
        "{status}"
    );
    assert_eq!(digests_to(&app, &readers[2]), 0);
    tokio::time::sleep(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn each_reader_gets_their_own_name_escaped_and_their_own_unsubscribe_link() {
    let app = spawn_app_with(|s| s.signup.welcome_email = false).await;
    let token = app.staff_token();
    app.seed_people(&[
        ("ann@example.org", Some("Ann <b>&</b> Co")),
        ("bo@example.org", None),
    ]);
    let id = app.queued_digest(&token).await;
    app.wait_until_sent(&token, id).await;
    let ann = app.smtp.messages_to("ann@example.org").remove(0);
    let bo = app.smtp.messages_to("bo@example.org").remove(0);
    assert!(ann.text().contains("Hello Ann <b>&</b> Co,"));
    assert!(
        ann.html()
            .contains("Hello Ann &lt;b&gt;&amp;&lt;/b&gt; Co,")
    );
    assert!(!bo.text().contains("Hello") && !bo.text().contains("NLx7"));
    let link = |m: &crate::helpers::ReceivedMail| m.link("/unsubscribe?token=");
    assert_ne!(link(&ann), link(&bo));
    assert!(ann.html().contains(&link(&ann)));
    assert!(
        ann.header("List-Unsubscribe")
            .unwrap()
            .contains(&link(&ann))
    );
}

#[tokio::test]
async fn the_preview_is_a_named_readers_copy_whose_links_explain_themselves() {
    let app = spawn_app().await;
    let token = app.staff_token();
    let id = app.draft_digest(&token).await;
    let html = app
        .admin_get(&token, &format!("/digests/{id}/preview"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("Hello Alex Example,"),
        "the greeting readers get: {html}"
    );
    // Each article's link says which article it opens (WCAG 2.4.4), not "Read the article".
    assert!(!html.contains("Read the article"));
    for title in [
        "Prolotherapy after failed back surgery",
        "PRP for sacroiliac joint pain",
    ] {
        assert!(html.contains(&format!(">Read “{title}”</a>")), "{html}");
    }
    let link = format!("{}/unsubscribe?preview=true", app.address);
    assert!(
        html.replace("&#x2f;", "/").contains(&link),
        "the preview's unsubscribe link: {html}"
    );
    for response in [
        app.get(&link).await,
        app.post_form(&link, &[("List-Unsubscribe", "One-Click")])
            .await,
    ] {
        assert_eq!(response.status().as_u16(), 200);
        let page = response.text().await.unwrap();
        assert!(page.contains("This was a preview"), "{page}");
    }

    // The test copy's links, List-Unsubscribe included, lead to the same page.
    let sent = app
        .admin_post(
            &token,
            &format!("/digests/{id}/test"),
            serde_json::json!({ "email": "editor@clinic.example" }),
        )
        .await;
    assert_eq!(sent.status().as_u16(), 200);
    let copy = app
        .smtp
        .wait_for("editor@clinic.example", 1)
        .await
        .remove(0);
    assert_eq!(
        copy.header("List-Unsubscribe").as_deref(),
        Some(format!("<{link}>").as_str())
    );
    assert!(copy.text().contains(&link));
}

const FEED_WITH_PICTURES: &str = r#"<?xml version="1.0"?><rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/"><channel><title>Clinic research</title>
<link>https://clinic.example/</link><description>Research</description>
<item><title>Ozone for knee arthritis</title><link>https://clinic.example/ozone-knee</link><guid>o-1</guid>
<media:content url="https://clinic.example/knee.jpg" medium="image"><media:description>A knee joint, drawn</media:description></media:content></item>
<item><title>Stem cells: what the trials say</title><link>https://clinic.example/stem-cells</link><guid>o-2</guid>
<enclosure url="https://clinic.example/cells.png" type="image/png" length="1"/></item>
</channel></rss>"#;

#[tokio::test]
async fn articles_carry_the_feeds_pictures_into_the_digest_with_alt_text() {
    let app = spawn_app().await;
    let token = app.staff_token();
    let id = app.draft_digest_of(&token, FEED_WITH_PICTURES).await;
    let html = app
        .admin_get(&token, &format!("/digests/{id}/preview"))
        .await
        .text()
        .await
        .unwrap()
        .replace("&#x2f;", "/");
    // The feed's own description of the picture, else the article's title, is its alt text.
    for (src, alt) in [
        ("https://clinic.example/knee.jpg", "A knee joint, drawn"),
        (
            "https://clinic.example/cells.png",
            "Stem cells: what the trials say",
        ),
    ] {
        let at = html
            .find(&format!("src=\"{src}\""))
            .unwrap_or_else(|| panic!("{src} in {html}"));
        let tag = &html[html[..at].rfind("<img").unwrap()..at + html[at..].find('>').unwrap()];
        assert!(tag.contains(&format!("alt=\"{alt}\"")), "{tag}");
        assert!(
            tag.contains("max-width: 552px") || tag.contains("max-width:552px"),
            "it shrinks on a phone: {tag}"
        );
    }
}

#[tokio::test]
async fn a_digest_without_any_articles_yet_says_to_import_some_first() {
    let app = spawn_app().await;
    let token = app.staff_token();
    let response = app
        .admin_post(
            &token,
            "/digests",
            serde_json::json!({"subject": "Latest research"}),
        )
        .await;
    assert_eq!(response.status().as_u16(), 422);
    let body = response.text().await.unwrap();
    assert!(body.contains("there are no articles yet"), "{body}");
}
