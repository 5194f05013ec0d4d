//! The staff pages under /admin, through HTTP as a browser uses them: sign-in and its refusals,
//! sessions, CSRF, and the digest, subscriber, staff and token pages end to end (mail over
//! real SMTP, a real database).

use newsletter::db::staff::add_staff;
use newsletter::domain::password::hash_password;
use secrecy::SecretString;

use crate::helpers::{TestApp, spawn_app, spawn_app_with};

const PASSWORD: &str = "correct horse battery";

/// A browser signed in as a staff member: its session cookie and the CSRF token of its pages.
struct Browser<'a> {
    app: &'a TestApp,
    cookie: String,
    csrf: String,
}

/// Adds a staff member with [`PASSWORD`].
fn add_member(app: &TestApp, email: &str) {
    let hash = hash_password(&SecretString::from(PASSWORD.to_string())).unwrap();
    let mut conn = app.db.get().unwrap();
    add_staff(&mut conn, email, Some("Ann Lee"), Some(&hash)).unwrap();
}

async fn login(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    app.client
        .post(app.url("/admin/login"))
        .header("Origin", &app.address)
        .form(&[("email", email), ("password", password), ("next", "/admin")])
        .send()
        .await
        .unwrap()
}

fn session_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("newsletter_staff=") && !c.starts_with("newsletter_staff=;"))
        .map(|c| c.split(';').next().unwrap().to_string())
}

fn csrf_of(html: &str) -> String {
    let at = html
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF token");
    html[at + 19..].split('"').next().unwrap().to_string()
}

impl<'a> Browser<'a> {
    async fn sign_in(app: &'a TestApp, email: &str) -> Browser<'a> {
        let response = login(app, email, PASSWORD).await;
        assert_eq!(response.status().as_u16(), 303);
        let cookie = session_cookie(&response).expect("a session cookie");
        let mut browser = Browser {
            app,
            cookie,
            csrf: String::new(),
        };
        let (status, html) = browser.get("/admin").await;
        assert_eq!(status, 200, "{html}");
        browser.csrf = csrf_of(&html);
        browser
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let response = self.get_raw(path).await;
        (response.status().as_u16(), response.text().await.unwrap())
    }

    async fn get_raw(&self, path: &str) -> reqwest::Response {
        self.app
            .client
            .get(self.app.url(path))
            .header("Cookie", &self.cookie)
            .send()
            .await
            .unwrap()
    }

    /// A form POST from one of our pages, with the session's CSRF token.
    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let mut fields = fields.to_vec();
        fields.push(("csrf", &self.csrf));
        self.app
            .client
            .post(self.app.url(path))
            .header("Cookie", &self.cookie)
            .header("Origin", &self.app.address)
            .form(&fields)
            .send()
            .await
            .unwrap()
    }

    /// A POST that must redirect; returns where to.
    async fn post_ok(&self, path: &str, fields: &[(&str, &str)]) -> String {
        let response = self.post(path, fields).await;
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_string());
        assert_eq!(
            status,
            303,
            "POST {path}: {}",
            response.text().await.unwrap()
        );
        location.unwrap()
    }
}

fn count_rows(app: &TestApp, table: &str) -> i64 {
    use diesel::prelude::*;
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let sql = format!("SELECT count(*) AS n FROM {table}");
    app.query(|conn| diesel::sql_query(sql).get_result::<N>(conn))
        .n
}

#[tokio::test]
async fn signed_out_pages_send_the_browser_to_sign_in_and_back() {
    let app = spawn_app().await;
    for path in [
        "/admin",
        "/admin/digests",
        "/admin/subscribers?q=ann",
        "/admin/staff",
    ] {
        let response = app.get(path).await;
        assert_eq!(response.status().as_u16(), 303, "{path}");
        let location = response.headers()["location"].to_str().unwrap().to_string();
        assert!(location.starts_with("/admin/login"), "{path} → {location}");
        if path != "/admin" {
            let next = url::form_urlencoded::parse(location.split('?').nth(1).unwrap().as_bytes())
                .find(|(k, _)| k == "next")
                .unwrap()
                .1
                .to_string();
            assert_eq!(next, path);
        }
    }
    // A signed-out POST changes nothing either.
    let response = app
        .post_form(
            "/admin/articles",
            &[("title", "X"), ("url", "https://example.org/x")],
        )
        .await;
    assert_eq!(response.status().as_u16(), 303);
    assert_eq!(count_rows(&app, "articles"), 0);

    let page = app.get("/admin/login").await.text().await.unwrap();
    assert!(page.contains("<label for=\"email\">Email</label>"));
    assert!(page.contains("<label for=\"password\">Password</label>"));
    assert!(page.contains(">Sign in</button>"));
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_address_get_the_same_answer() {
    let app = spawn_app().await;
    add_member(&app, "ann@clinic.example");
    let wrong = login(&app, "ann@clinic.example", "not the password").await;
    let unknown = login(&app, "nobody@clinic.example", "not the password").await;
    for response in [&wrong, &unknown] {
        assert_eq!(response.status().as_u16(), 401);
        assert_eq!(session_cookie(response), None);
    }
    let (wrong, unknown) = (wrong.text().await.unwrap(), unknown.text().await.unwrap());
    let message = "That email address and password do not match an account";
    assert!(wrong.contains(message) && unknown.contains(message));
    assert_eq!(
        wrong.replace("ann@clinic.example", "ADDRESS"),
        unknown.replace("nobody@clinic.example", "ADDRESS"),
        "the two answers differ only in the address typed"
    );
    // The right password still works, in any letter case of the address.
    let right = login(&app, "Ann@Clinic.example", PASSWORD).await;
    assert_eq!(right.status().as_u16(), 303);
    assert!(session_cookie(&right).is_some());
    let cookie = right.headers().get("set-cookie").unwrap().to_str().unwrap();
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/admin"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "http base_url: no Secure flag ({cookie})"
    );
}

#[tokio::test]
async fn sign_in_is_rate_limited_per_address_and_the_page_says_how_long_to_wait() {
    let app = spawn_app_with(|s| s.admin.login_attempts_per_15_minutes = 3).await;
    add_member(&app, "ann@clinic.example");
    for _ in 0..3 {
        assert_eq!(
            login(&app, "ann@clinic.example", "guess")
                .await
                .status()
                .as_u16(),
            401
        );
    }
    // Even the right password waits now: the limit is on attempts, not failures.
    let limited = login(&app, "ann@clinic.example", PASSWORD).await;
    assert_eq!(limited.status().as_u16(), 429);
    let wait: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait > 0 && wait <= 300, "{wait}");
    assert_eq!(session_cookie(&limited), None);
    let page = limited.text().await.unwrap();
    assert!(
        page.contains("too many sign-in attempts") && page.contains("Please wait"),
        "{page}"
    );
}

#[tokio::test]
async fn a_change_without_the_csrf_token_or_from_another_site_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    add_member(&app, "ann@clinic.example");
    let browser = Browser::sign_in(&app, "ann@clinic.example").await;
    let article = [
        ("title", "Prolotherapy"),
        ("url", "https://clinic.example/p"),
    ];

    let no_token = app
        .client
        .post(app.url("/admin/articles"))
        .header("Cookie", &browser.cookie)
        .form(&article)
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status().as_u16(), 403);
    assert!(
        no_token
            .text()
            .await
            .unwrap()
            .contains("nothing was changed")
    );

    let mut forged = article.to_vec();
    forged.push(("csrf", "0000"));
    let wrong_token = app
        .client
        .post(app.url("/admin/articles"))
        .header("Cookie", &browser.cookie)
        .form(&forged)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_token.status().as_u16(), 403);

    let mut with_token = article.to_vec();
    with_token.push(("csrf", &browser.csrf));
    let foreign = app
        .client
        .post(app.url("/admin/articles"))
        .header("Cookie", &browser.cookie)
        .header("Origin", "https://evil.example")
        .form(&with_token)
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status().as_u16(), 403);
    assert!(foreign.text().await.unwrap().contains("another site"));
    assert_eq!(count_rows(&app, "articles"), 0);

    assert_eq!(
        browser.post_ok("/admin/articles", &article).await,
        "/admin/articles?done=article-added"
    );
    assert_eq!(count_rows(&app, "articles"), 1);
}

#[tokio::test]
async fn an_idle_session_ends_and_signing_out_ends_it_for_good() {
    let app = spawn_app().await;
    add_member(&app, "ann@clinic.example");
    let browser = Browser::sign_in(&app, "ann@clinic.example").await;
    // Idle for longer than admin.session_idle_minutes (the default, 720).
    app.query(|conn| {
        use diesel::prelude::*;
        use newsletter::db::schema::staff_sessions::dsl as s;
        diesel::update(s::staff_sessions)
            .set(s::last_seen_at.eq(newsletter::db::now() - chrono::Duration::minutes(721)))
            .execute(conn)
    });
    let (status, _) = browser.get("/admin").await;
    assert_eq!(status, 303);
    assert_eq!(
        count_rows(&app, "staff_sessions"),
        0,
        "the idle session was ended"
    );

    // 719 minutes idle is still fine.
    let browser = Browser::sign_in(&app, "ann@clinic.example").await;
    app.query(|conn| {
        use diesel::prelude::*;
        use newsletter::db::schema::staff_sessions::dsl as s;
        diesel::update(s::staff_sessions)
            .set(s::last_seen_at.eq(newsletter::db::now() - chrono::Duration::minutes(719)))
            .execute(conn)
    });
    assert_eq!(browser.get("/admin").await.0, 200);

    let out = browser.post("/admin/logout", &[]).await;
    assert_eq!(out.status().as_u16(), 303);
    assert_eq!(out.headers()["location"], "/admin/login");
    assert_eq!(
        browser.get("/admin").await.0,
        303,
        "the old cookie is worth nothing"
    );
    let log = browser_free_activity(&app);
    assert!(log.contains(&"signed out".to_string()), "{log:?}");
}

fn browser_free_activity(app: &TestApp) -> Vec<String> {
    app.query(|conn| newsletter::db::staff::list_activity(conn, 1, 100))
        .0
        .into_iter()
        .map(|a| a.action)
        .collect()
}

#[tokio::test]
async fn staff_compose_preview_test_and_send_a_digest_in_the_browser() {
    let app = spawn_app().await;
    add_member(&app, "ann@clinic.example");
    let readers = app.seed_confirmed("reader", 3);
    let browser = Browser::sign_in(&app, "ann@clinic.example").await;

    browser
        .post_ok(
            "/admin/articles",
            &[
                ("title", "Prolotherapy after failed back surgery"),
                ("url", "https://clinic.example/prolotherapy"),
                ("summary", "What the studies say."),
                ("published_at", "2026-11-20"),
            ],
        )
        .await;
    let (_, compose) = browser.get("/admin/digests/new").await;
    assert!(compose.contains("Ticked at first"));
    assert!(compose.contains("<label for=\"subject\">Subject</label>"));
    assert!(compose.contains("<label for=\"intro\">Introduction</label>"));
    assert!(compose.contains("Prolotherapy after failed back surgery"));
    assert!(
        compose.contains("name=\"article\" value=\"1\" checked"),
        "not yet sent: preselected"
    );

    // Nothing ticked: the form comes back with what was typed and says why.
    let refused = browser
        .post(
            "/admin/digests",
            &[("subject", "Latest research"), ("intro", "Hello")],
        )
        .await;
    assert_eq!(refused.status().as_u16(), 422);
    let refused = refused.text().await.unwrap();
    assert!(
        refused.contains("Tick at least one article")
            && refused.contains("value=\"Latest research\"")
    );

    let draft = browser
        .post_ok(
            "/admin/digests",
            &[
                ("subject", "Latest research"),
                ("intro", "Two new **studies**."),
                ("article", "1"),
            ],
        )
        .await;
    assert_eq!(draft, "/admin/digests/1?done=draft-saved");
    let (_, page) = browser.get(&draft).await;
    assert!(page.contains("The draft was saved."));
    assert!(page.contains("Send to 3 confirmed subscribers"), "{page}");
    assert!(
        page.contains("value=\"ann@clinic.example\""),
        "the test address is prefilled"
    );
    assert!(page.contains("Two new studies.") || page.contains("Two new **studies**."));
    let frame = browser.get_raw("/admin/digests/1/preview").await;
    assert_eq!(frame.headers()["x-frame-options"], "SAMEORIGIN");
    let frame = frame.text().await.unwrap();
    assert!(
        frame.contains("Prolotherapy after failed back surgery")
            && frame.contains("<strong>studies</strong>")
    );

    // The test copy crosses SMTP to the staff member, marked [Test].
    assert_eq!(
        browser
            .post_ok("/admin/digests/1/test", &[("email", "ann@clinic.example")])
            .await,
        "/admin/digests/1?done=test-sent"
    );
    let test = app.smtp.wait_for("ann@clinic.example", 1).await;
    assert_eq!(test[0].subject(), "[Test] Latest research");
    assert!(
        test[0]
            .text()
            .contains("Prolotherapy after failed back surgery")
    );

    // The button leads to a confirmation; nothing is queued before "Yes, send now".
    let (_, confirm) = browser.get("/admin/digests/1/send").await;
    assert!(
        confirm.contains("Send 'Latest research' to 3 confirmed subscribers?"),
        "{confirm}"
    );
    assert!(confirm.contains(">Yes, send now</button>"));
    assert_eq!(count_rows(&app, "deliveries WHERE kind = 'digest'"), 0);

    assert_eq!(
        browser.post_ok("/admin/digests/1/send", &[]).await,
        "/admin/digests/1?done=sending"
    );
    for reader in &readers {
        let mails = app.smtp.wait_for(reader, 1).await;
        assert_eq!(mails[0].subject(), "Latest research");
    }
    let mut status = String::new();
    for _ in 0..100 {
        let progress: serde_json::Value = browser
            .get_raw("/admin/digests/1/progress")
            .await
            .json()
            .await
            .unwrap();
        status = progress["status"].as_str().unwrap().to_string();
        if status == "sent" {
            assert_eq!(progress["sent"], 3);
            assert_eq!(progress["percent"], 100);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, "sent");
    // The worker keeps the totals of a send that ended, so no page view counts them again.
    let mut kept = None;
    for _ in 0..50 {
        kept = app.query(|conn| {
            use diesel::prelude::*;
            use newsletter::db::schema::digest_totals::dsl as t;
            t::digest_totals
                .find(1i64)
                .select((t::sent, t::failed, t::skipped))
                .first::<(i64, i64, i64)>(conn)
                .optional()
        });
        if kept.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(kept, Some((3, 0, 0)));
    let (_, sent_page) = browser.get("/admin/digests/1").await;
    assert!(
        !sent_page.contains("Send to"),
        "a sent digest offers no second send"
    );
    // A second "Yes" (another tab) queues nothing more.
    browser.post_ok("/admin/digests/1/send", &[]).await;
    assert_eq!(count_rows(&app, "deliveries WHERE kind = 'digest'"), 3);
    // A sent digest stays as readers got it, and so do its articles.
    assert_eq!(
        browser
            .post("/admin/digests/1/delete", &[])
            .await
            .status()
            .as_u16(),
        403
    );
    assert_eq!(
        browser
            .post("/admin/articles/1/delete", &[])
            .await
            .status()
            .as_u16(),
        403
    );

    let (_, dashboard) = browser.get("/admin").await;
    assert!(dashboard.contains("Latest research"));
    assert!(
        dashboard.contains("<dt>Confirmed</dt><dd>3</dd>"),
        "{dashboard}"
    );
    let log = browser_free_activity(&app);
    for action in [
        "signed in",
        "added article",
        "created digest",
        "sent test",
        "sent digest",
    ] {
        assert!(log.contains(&action.to_string()), "{action}: {log:?}");
    }
}

#[tokio::test]
async fn staff_pause_and_resume_a_send_from_its_page() {
    let app = spawn_app().await;
    add_member(&app, "ann@clinic.example");
    app.seed_confirmed("reader", 30);
    app.smtp.take_time(std::time::Duration::from_millis(100));
    let token = app.staff_token();
    let id = app.draft_digest(&token).await;
    let browser = Browser::sign_in(&app, "ann@clinic.example").await;
    browser
        .post_ok(&format!("/admin/digests/{id}/send"), &[])
        .await;
    let (_, page) = browser.get(&format!("/admin/digests/{id}")).await;
    assert!(
        page.contains("data-progress-url") && page.contains("http-equiv=\"refresh\""),
        "it updates itself"
    );
    assert!(page.contains(">Pause</button>") && page.contains(">Cancel the send</a>"));

    assert_eq!(
        browser
            .post_ok(&format!("/admin/digests/{id}/pause"), &[])
            .await,
        format!("/admin/digests/{id}?done=paused")
    );
    let (_, paused) = browser.get(&format!("/admin/digests/{id}")).await;
    assert!(
        paused.contains("paused by Ann Lee &lt;ann@clinic.example&gt;"),
        "{paused}"
    );
    assert!(paused.contains(">Resume</button>") && !paused.contains(">Pause</button>"));
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    let during = app.smtp.all_messages().len();
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    assert_eq!(
        app.smtp.all_messages().len(),
        during,
        "nothing goes out while paused"
    );
    assert!(during < 30);

    browser
        .post_ok(&format!("/admin/digests/{id}/resume"), &[])
        .await;
    let done = app.wait_until_sent(&token, id).await;
    assert_eq!(done["sent"], 30);
    assert!(app.copies_by_recipient().values().all(|n| *n == 1));
    // Pausing a finished send is refused with the reason.
    let late = browser
        .post(&format!("/admin/digests/{id}/pause"), &[])
        .await;
    assert_eq!(late.status().as_u16(), 403);
    assert!(late.text().await.unwrap().contains("cannot be paused now"));
}

#[tokio::test]
async fn staff_search_by_name_or_address_and_erase_a_person_after_confirming() {
    let app = spawn_app().await;
    add_member(&app, "ann@clinic.example");
    app.seed_people(&[
        ("anna.berg@example.org", Some("Anna Berg")),
        ("zed@example.org", Some("Annika Holm")),
        ("bob@example.org", Some("Bob Stone")),
    ]);
    let browser = Browser::sign_in(&app, "ann@clinic.example").await;
    let (_, found) = browser.get("/admin/subscribers?q=ANN").await;
    assert!(
        found.contains("anna.berg@example.org") && found.contains("zed@example.org"),
        "{found}"
    );
    assert!(!found.contains("bob@example.org"));
    let (_, by_address) = browser.get("/admin/subscribers?q=bob%40").await;
    assert!(by_address.contains("bob@example.org") && !by_address.contains("zed@example.org"));
    // Wildcards are text, not patterns.
    let (_, none) = browser.get("/admin/subscribers?q=%25").await;
    assert!(none.contains("Nobody matches."));
    let (_, filtered) = browser.get("/admin/subscribers?status=pending").await;
    assert!(filtered.contains("Nobody matches."));

    let id = app
        .query(|conn| {
            newsletter::db::subscribers::find_subscriber_by_email(conn, "zed@example.org")
        })
        .unwrap()
        .id;
    let (_, person) = browser.get(&format!("/admin/subscribers/{id}")).await;
    assert!(person.contains("Consent record") && person.contains("seeded by the test"));
    let (_, confirm) = browser.get(&format!("/admin/subscribers/{id}/erase")).await;
    assert!(confirm.contains("Erase zed@example.org?") && confirm.contains("cannot be undone"));
    assert!(
        app.subscriber_status("zed@example.org").is_some(),
        "asking changes nothing"
    );
    assert_eq!(
        browser
            .post_ok(&format!("/admin/subscribers/{id}/erase"), &[])
            .await,
        "/admin/subscribers?done=erased"
    );
    assert_eq!(app.subscriber_status("zed@example.org"), None);
    assert_eq!(
        browser.get(&format!("/admin/subscribers/{id}")).await.0,
        404
    );

    let bob = app
        .query(|conn| {
            newsletter::db::subscribers::find_subscriber_by_email(conn, "bob@example.org")
        })
        .unwrap()
        .id;
    browser
        .post_ok(&format!("/admin/subscribers/{bob}/unsubscribe"), &[])
        .await;
    assert_eq!(
        app.subscriber_status("bob@example.org").as_deref(),
        Some("unsubscribed")
    );
    let log = browser_free_activity(&app);
    assert!(
        log.contains(&"erased a person".to_string())
            && log.contains(&"unsubscribed a person".to_string())
    );
}

#[tokio::test]
async fn the_export_is_csv_and_an_upload_imports_with_consent() {
    let app = spawn_app().await;
    add_member(&app, "ann@clinic.example");
    app.seed_people(&[("old@example.org", Some("Old Reader"))]);
    let browser = Browser::sign_in(&app, "ann@clinic.example").await;
    let export = browser.get_raw("/admin/subscribers/export.csv").await;
    assert_eq!(export.status().as_u16(), 200);
    assert!(
        export.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("attachment")
    );
    let csv = export.text().await.unwrap();
    assert!(
        csv.starts_with("id,email,name,status")
            && csv.contains("old@example.org,Old Reader,confirmed"),
        "{csv}"
    );

    let boundary = "XBOUNDARYX";
    let file = "email,name\nnew@example.org,New Reader\nnot-an-address,Bad\nold@example.org,Old\n";
    let field = |name: &str, value: &str| {
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        )
    };
    let body = format!(
        "{}{}{}--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"open-day.csv\"\r\nContent-Type: text/csv\r\n\r\n{file}\r\n--{boundary}--\r\n",
        field("csrf", &browser.csrf),
        field("confirmed", "1"),
        field("consent", "Ticked the box at the 2026 open day"),
    );
    let response = app
        .client
        .post(app.url("/admin/subscribers/import"))
        .header("Cookie", &browser.cookie)
        .header("Origin", &app.address)
        .header(
            "Content-Type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let page = response.text().await.unwrap();
    assert!(
        page.contains("Imported 1; 1 were on the list already"),
        "{page}"
    );
    assert!(page.contains("line 3"), "the bad line is named: {page}");
    assert_eq!(
        app.subscriber_status("new@example.org").as_deref(),
        Some("confirmed")
    );
}

#[tokio::test]
async fn a_setup_link_sets_a_password_once() {
    let app = spawn_app().await;
    let output = app
        .command(&["staff", "add", "bo@clinic.example", "--name", "Bo"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let link = String::from_utf8(output.stdout).unwrap().trim().to_string();
    assert!(link.contains("/admin/setup?token="), "{link}");
    let path = &link[link.find("/admin").unwrap()..];
    let page = app.get(path).await.text().await.unwrap();
    assert!(page.contains("Choose your password") && page.contains("bo@clinic.example"));
    let token = path.split("token=").nth(1).unwrap();

    let post = |password: &'static str, again: &'static str| {
        app.client
            .post(app.url("/admin/setup"))
            .form(&[
                ("token", token),
                ("password", password),
                ("password_again", again),
            ])
            .send()
    };
    let short = post("short", "short").await.unwrap();
    assert_eq!(short.status().as_u16(), 422);
    assert!(
        short
            .text()
            .await
            .unwrap()
            .contains("at least 10 characters")
    );
    let common = post("password123", "password123").await.unwrap();
    assert!(common.text().await.unwrap().contains("most common"));
    let mismatch = post(PASSWORD, "correct horse battery!").await.unwrap();
    assert!(mismatch.text().await.unwrap().contains("not the same"));
    let set = post(PASSWORD, PASSWORD).await.unwrap();
    assert_eq!(set.status().as_u16(), 303);
    assert_eq!(set.headers()["location"], "/admin/login?done=password-set");
    assert_eq!(
        login(&app, "bo@clinic.example", PASSWORD)
            .await
            .status()
            .as_u16(),
        303
    );
    // Used: the link no longer works.
    assert_eq!(app.get(path).await.status().as_u16(), 404);
    assert_eq!(
        post("another good one", "another good one")
            .await
            .unwrap()
            .status()
            .as_u16(),
        404
    );

    let list = app.command(&["staff", "list"]).output().unwrap();
    assert!(String::from_utf8_lossy(&list.stdout).contains("bo@clinic.example"));
    let removed = app
        .command(&["staff", "remove", "bo@clinic.example"])
        .output()
        .unwrap();
    assert!(removed.status.success());
    assert_eq!(
        login(&app, "bo@clinic.example", PASSWORD)
            .await
            .status()
            .as_u16(),
        401
    );
}

#[tokio::test]
async fn staff_add_colleagues_and_tokens_that_are_shown_once_and_can_be_revoked() {
    let app = spawn_app().await;
    add_member(&app, "ann@clinic.example");
    let browser = Browser::sign_in(&app, "ann@clinic.example").await;
    let added = browser
        .post(
            "/admin/staff",
            &[("email", "cy@clinic.example"), ("name", "Cy")],
        )
        .await;
    // Auto-escaping writes "/" as "&#x2f;"; a browser shows the link as it is.
    let added = added.text().await.unwrap().replace("&#x2f;", "/");
    assert!(added.contains("cy@clinic.example was added") && added.contains("/admin/setup?token="));

    let created = browser
        .post("/admin/tokens", &[("token_name", "deploy script")])
        .await;
    let created = created.text().await.unwrap();
    let at = created.find("<p class=\"secret\">").unwrap() + 18;
    let token = created[at..at + 64].to_string();
    assert_eq!(
        app.admin_get(&token, "/digests").await.status().as_u16(),
        200
    );
    let (_, later) = browser.get("/admin/staff").await;
    assert!(
        later.contains("deploy script") && !later.contains(&token),
        "shown once"
    );
    let id = app.query(newsletter::db::staff_tokens::list_staff_tokens)[0].id;
    browser
        .post_ok(&format!("/admin/tokens/{id}/revoke"), &[])
        .await;
    assert_eq!(
        app.admin_get(&token, "/digests").await.status().as_u16(),
        401
    );
    let log = browser_free_activity(&app);
    for action in ["added staff member", "created token", "revoked token"] {
        assert!(log.contains(&action.to_string()), "{action}: {log:?}");
    }
    let (_, activity) = browser.get("/admin/activity").await;
    assert!(
        activity.contains("revoked token")
            && activity.contains("Ann Lee &lt;ann@clinic.example&gt;")
    );
}

#[tokio::test]
async fn two_factor_sign_in_asks_for_a_code_that_works_once() {
    let app = spawn_app().await;
    add_member(&app, "ann@clinic.example");
    let browser = Browser::sign_in(&app, "ann@clinic.example").await;
    let setup = browser
        .post("/admin/account/two-factor", &[])
        .await
        .text()
        .await
        .unwrap();
    assert!(setup.contains("<svg"), "a QR code");
    let at = setup.find("name=\"secret\" value=\"").unwrap() + 21;
    let secret = setup[at..].split('"').next().unwrap().to_string();
    let totp = newsletter_totp(&secret);
    let wrong = browser
        .post(
            "/admin/account/two-factor/confirm",
            &[("secret", &secret), ("code", "000000")],
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(wrong.contains("That code is not right"));
    let on = browser
        .post(
            "/admin/account/two-factor/confirm",
            &[
                ("secret", &secret),
                ("code", &totp.generate_current().to_string()),
            ],
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(on.contains("Two-factor sign-in is on"), "{on}");
    let codes: Vec<String> = on
        .split("<li>")
        .skip(1)
        .map(|c| c.split('<').next().unwrap().to_string())
        .filter(|c| c.len() == 14)
        .collect();
    assert_eq!(codes.len(), 8, "{on}");

    // The password alone now leads to the code page, and the pages stay closed.
    let first = login(&app, "ann@clinic.example", PASSWORD).await;
    assert_eq!(
        first.headers()["location"].to_str().unwrap(),
        "/admin/login/code?next=%2Fadmin"
    );
    let pending = session_cookie(&first).unwrap();
    let closed = app
        .client
        .get(app.url("/admin"))
        .header("Cookie", &pending)
        .send()
        .await
        .unwrap();
    assert_eq!(closed.headers()["location"], "/admin/login/code");
    let code = |cookie: String, code: String| {
        app.client
            .post(app.url("/admin/login/code"))
            .header("Cookie", cookie)
            .form(&[("code", code), ("next", "/admin".into())])
            .send()
    };
    assert_eq!(
        code(pending.clone(), "123456".into())
            .await
            .unwrap()
            .status()
            .as_u16(),
        401
    );
    // The code used to turn it on was used: a fresh one is needed; the recovery code works once.
    let by_recovery = code(pending, codes[0].to_uppercase()).await.unwrap();
    assert_eq!(by_recovery.status().as_u16(), 303);
    let full = session_cookie(&by_recovery).expect("a new cookie value once signed in");
    let open = app
        .client
        .get(app.url("/admin"))
        .header("Cookie", &full)
        .send()
        .await
        .unwrap();
    assert_eq!(open.status().as_u16(), 200);
    let again = login(&app, "ann@clinic.example", PASSWORD).await;
    let pending = session_cookie(&again).unwrap();
    assert_eq!(
        code(pending, codes[0].clone())
            .await
            .unwrap()
            .status()
            .as_u16(),
        401,
        "a recovery code works once"
    );
}

fn newsletter_totp(secret: &str) -> totp_rs::Totp {
    totp_rs::Builder::new()
        .with_secret(totp_rs::Secret::try_from_base32(secret).unwrap())
        .with_account_name("ann@clinic.example")
        .build()
        .unwrap()
}

#[tokio::test]
async fn the_dashboard_counts_stay_right_when_another_tool_changes_the_rows() {
    use diesel::prelude::*;
    let app = spawn_app().await;
    add_member(&app, "ann@clinic.example");
    app.seed_confirmed("reader", 3);
    // A restore or a move from another system writes rows with its own SQL.
    app.query(|conn| {
        diesel::sql_query(
            "INSERT INTO subscribers (email, email_key, name, status, created_at, updated_at) \
             VALUES ('moved@example.org', 'moved@example.org', NULL, 'pending', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
        )
        .execute(conn)?;
        diesel::sql_query("UPDATE subscribers SET status = 'unsubscribed' WHERE email = 'reader0@example.org'")
            .execute(conn)?;
        diesel::sql_query("UPDATE subscribers SET name = 'Same status' WHERE email = 'reader1@example.org'")
            .execute(conn)?;
        diesel::sql_query("DELETE FROM subscriber_events WHERE subscriber_id IN (SELECT id FROM subscribers WHERE email = 'reader2@example.org')")
            .execute(conn)?;
        diesel::sql_query("DELETE FROM subscribers WHERE email = 'reader2@example.org'").execute(conn)
    });
    let browser = Browser::sign_in(&app, "ann@clinic.example").await;
    let (_, dashboard) = browser.get("/admin").await;
    for (label, n) in [
        ("Confirmed", 1),
        ("Pending", 1),
        ("Unsubscribed", 1),
        ("Bounced", 0),
    ] {
        assert!(
            dashboard.contains(&format!("<dt>{label}</dt><dd>{n}</dd>")),
            "{label} {n}: {dashboard}"
        );
    }
    let (_, list) = browser.get("/admin/subscribers").await;
    assert!(
        list.contains("confirmed (1)") && list.contains("pending (1)"),
        "{list}"
    );

    if matches!(app.db.backend(), newsletter::db::Backend::Postgres) {
        app.query(|conn| diesel::sql_query("TRUNCATE subscribers CASCADE").execute(conn));
        let (_, emptied) = browser.get("/admin").await;
        assert!(
            emptied.contains("<dt>Confirmed</dt><dd>0</dd>") && emptied.contains("0 people in all"),
            "{emptied}"
        );
    }
}

#[tokio::test]
async fn a_fresh_install_says_how_to_make_the_first_account_and_warns_without_a_worker() {
    let app = crate::helpers::spawn_app_without_worker(|_| {}).await;
    let fresh = app.get("/admin/login").await.text().await.unwrap();
    assert!(
        fresh.contains("There are no staff accounts yet") && fresh.contains("newsletter staff add")
    );
    add_member(&app, "ann@clinic.example");
    let later = app.get("/admin/login").await.text().await.unwrap();
    assert!(!later.contains("There are no staff accounts yet"));
    let browser = Browser::sign_in(&app, "ann@clinic.example").await;
    let (_, dashboard) = browser.get("/admin").await;
    assert!(
        dashboard.contains("No delivery worker is running")
            && dashboard.contains("None has been seen yet")
    );

    // A worker says it is alive as it starts; the warning goes.
    let worker = app.worker(|_| {});
    let mut warned = true;
    for _ in 0..50 {
        warned = browser
            .get("/admin")
            .await
            .1
            .contains("No delivery worker is running");
        if !warned {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(!warned, "a running worker clears the warning");
    worker.stop().await;
    // Gone for over a minute: the warning is back, with when it was last seen.
    app.query(|conn| {
        use diesel::prelude::*;
        use newsletter::db::schema::workers::dsl as w;
        diesel::update(w::workers)
            .set(w::last_seen_at.eq(newsletter::db::now() - chrono::Duration::seconds(61)))
            .execute(conn)
    });
    let (_, silent) = browser.get("/admin").await;
    assert!(
        silent.contains("No delivery worker is running") && silent.contains("One was last seen at")
    );
}

#[tokio::test]
async fn a_digest_page_lists_failed_deliveries_and_a_person_page_their_mail() {
    let app = spawn_app().await;
    add_member(&app, "ann@clinic.example");
    let readers = app.seed_confirmed("reader", 3);
    app.smtp.refuse(
        &readers[1],
        550,
        "5.1.1 <reader1@example.org>: no such user",
        None,
    );
    let token = app.staff_token();
    let id = app.queued_digest(&token).await;
    app.wait_until_sent(&token, id).await;
    let browser = Browser::sign_in(&app, "ann@clinic.example").await;
    let (_, page) = browser.get(&format!("/admin/digests/{id}")).await;
    assert!(page.contains("Failed deliveries"), "{page}");
    assert!(
        page.contains("reader1@example.org") && page.contains("no such user"),
        "{page}"
    );
    assert!(
        page.contains("data-count=\"failed\">1<") && page.contains("data-count=\"sent\">2<"),
        "{page}"
    );

    let person = app
        .query(|conn| newsletter::db::subscribers::find_subscriber_by_email(conn, &readers[0]))
        .unwrap()
        .id;
    let (_, history) = browser.get(&format!("/admin/subscribers/{person}")).await;
    assert!(
        history.contains("Mail sent to them") && history.contains("Latest research"),
        "{history}"
    );
    assert!(history.contains("<span class=\"status sent\">sent</span>"));
}

#[tokio::test]
async fn long_lists_have_pages_and_articles_can_be_edited_until_they_are_sent() {
    let app = spawn_app().await;
    add_member(&app, "ann@clinic.example");
    app.seed_confirmed("reader", 60);
    let browser = Browser::sign_in(&app, "ann@clinic.example").await;
    let (_, first) = browser.get("/admin/subscribers").await;
    assert_eq!(
        first
            .matches("<td class=\"wrap\"><a href=\"/admin/subscribers/")
            .count(),
        50
    );
    assert!(first.contains(">Next page</a>") && !first.contains(">Previous page</a>"));
    let (_, second) = browser.get("/admin/subscribers?q=&status=&page=2").await;
    assert_eq!(
        second
            .matches("<td class=\"wrap\"><a href=\"/admin/subscribers/")
            .count(),
        10
    );
    assert!(second.contains(">Previous page</a>") && !second.contains(">Next page</a>"));
    // A search by the start of an address pages too, in address order.
    let (_, search) = browser.get("/admin/subscribers?q=reader1").await;
    let at = |needle: &str| search.find(needle).unwrap_or_else(|| panic!("{needle}"));
    assert!(
        at("reader10@example.org") < at("reader11@example.org")
            && at("reader18@example.org") < at("reader19@example.org")
    );
    assert_eq!(
        search
            .matches("<td class=\"wrap\"><a href=\"/admin/subscribers/")
            .count(),
        11
    );

    // Import from the feed; the form then offers the same address again.
    let feed = crate::helpers::serve_feed(crate::helpers::FEED);
    let imported = browser
        .post_ok("/admin/articles/import", &[("feed_url", &feed)])
        .await;
    assert_eq!(imported, "/admin/articles?imported=2&skipped=0");
    let (_, list) = browser.get(&imported).await;
    assert!(list.contains("Imported 2 new articles from the feed; 0 were in the list already."));
    assert!(
        list.contains(&format!("value=\"{}\"", feed.replace('/', "&#x2f;"))),
        "{list}"
    );

    let edited = browser
        .post_ok(
            "/admin/articles/1",
            &[
                ("title", "Prolotherapy, two years on"),
                ("url", "https://clinic.example/prolotherapy-two-years"),
                ("summary", "Updated."),
                ("published_at", "2026-11-24"),
            ],
        )
        .await;
    assert_eq!(edited, "/admin/articles?done=article-saved");
    let (_, edit) = browser.get("/admin/articles/1").await;
    assert!(edit.contains("value=\"Prolotherapy, two years on\"") && edit.contains("2026-11-24"));
    let bad = browser
        .post("/admin/articles/1", &[("title", ""), ("url", "ftp://x")])
        .await;
    assert_eq!(bad.status().as_u16(), 422);
    assert!(
        bad.text()
            .await
            .unwrap()
            .contains("Title must have 1 to 300 characters.")
    );
    // Once in a sent digest it stays as readers got it.
    let token = app.staff_token();
    let body = serde_json::json!({"subject": "Latest research", "article_ids": [1]});
    let id = app
        .admin_post(&token, "/digests", body)
        .await
        .json::<serde_json::Value>()
        .await
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    app.send_digest(&token, id).await;
    let (_, locked) = browser.get("/admin/articles/1").await;
    assert!(
        locked.contains("It cannot be changed or deleted.")
            && !locked.contains(">Save article</button>")
    );
    let refused = browser
        .post(
            "/admin/articles/1",
            &[("title", "Changed"), ("url", "https://clinic.example/c")],
        )
        .await;
    assert_eq!(refused.status().as_u16(), 409);
}

#[tokio::test]
async fn a_draft_offers_no_send_while_nobody_has_confirmed() {
    let app = spawn_app().await;
    add_member(&app, "ann@clinic.example");
    let token = app.staff_token();
    let id = app.draft_digest(&token).await;
    let browser = Browser::sign_in(&app, "ann@clinic.example").await;
    let (_, draft) = browser.get(&format!("/admin/digests/{id}")).await;
    assert!(
        draft.contains("Nobody has confirmed their subscription yet")
            && !draft.contains("Send to 0")
    );
    assert!(draft.contains(">Send test</button>"));
    let (_, ask) = browser.get(&format!("/admin/digests/{id}/send")).await;
    assert!(ask.contains("nothing would be sent") && !ask.contains("Yes, send now"));
}

#[tokio::test]
async fn a_draft_cannot_be_sent_from_the_pages_without_a_postal_address_and_the_page_says_why() {
    let app = spawn_app_with(|s| s.site.postal_address = String::new()).await;
    app.confirmed_subscriber("reader@example.org").await;
    let token = app.staff_token();
    let id = app.draft_digest(&token).await;
    add_member(&app, "ann@clinic.example");
    let browser = Browser::sign_in(&app, "ann@clinic.example").await;

    let (status, page) = browser.get(&format!("/admin/digests/{id}")).await;
    assert_eq!(status, 200);
    assert!(page.contains("id=\"not-ready\""), "{page}");
    assert!(page.contains("postal address"), "{page}");
    assert!(
        !page.contains(&format!("href=\"/admin/digests/{id}/send\"")),
        "no send button: {page}"
    );
    // The confirmation page leads back, and a send posted anyway is refused and queues nothing.
    let confirm = browser.get_raw(&format!("/admin/digests/{id}/send")).await;
    assert_eq!(confirm.status().as_u16(), 303);
    let refused = browser
        .post(&format!("/admin/digests/{id}/send"), &[])
        .await;
    assert_eq!(refused.status().as_u16(), 400);
    let refusal = refused.text().await.unwrap();
    assert!(refusal.contains("postal address"), "{refusal}");
    assert!(app.delivery_statuses("digest").is_empty());
    // A test copy still goes out.
    let test = browser
        .post(
            &format!("/admin/digests/{id}/test"),
            &[("email", "ann@clinic.example")],
        )
        .await;
    assert_eq!(
        test.status().as_u16(),
        303,
        "{}",
        test.text().await.unwrap()
    );
    app.smtp.wait_for("ann@clinic.example", 1).await;
}

#[tokio::test]
async fn staff_schedule_a_draft_on_the_clinics_clock_and_can_take_it_back() {
    use diesel::prelude::*;
    use newsletter::db::schema::digests;
    let app = spawn_app_with(|s| s.site.timezone = "Europe/Berlin".into()).await;
    add_member(&app, "ann@clinic.example");
    let token = app.staff_token();
    let id = app.draft_digest(&token).await;
    let browser = Browser::sign_in(&app, "ann@clinic.example").await;
    let path = format!("/admin/digests/{id}");

    let (_, page) = browser.get(&path).await;
    let page = page.replace("&#x2f;", "/");
    assert!(
        page.contains("Or send it later, at (Europe/Berlin time)"),
        "{page}"
    );
    assert!(page.contains("type=\"datetime-local\""));

    // A time gone by comes back with what was typed and why.
    let refused = browser
        .post(&format!("{path}/schedule"), &[("at", "2001-01-05T09:00")])
        .await;
    assert_eq!(refused.status().as_u16(), 422);
    let refused = refused.text().await.unwrap();
    assert!(refused.contains("in the past"), "{refused}");
    assert!(refused.contains("value=\"2001-01-05T09:00\""));

    // 09:00 in Berlin in January is 08:00 UTC.
    let done = browser
        .post_ok(&format!("{path}/schedule"), &[("at", "2099-01-05T09:00")])
        .await;
    assert_eq!(done, format!("{path}?done=scheduled"));
    let (_, page) = browser.get(&done).await;
    let page = page.replace("&#x2f;", "/");
    assert!(
        page.contains("5 January 2099, 09:00 (Europe/Berlin)"),
        "{page}"
    );
    assert!(page.contains("Unschedule"), "{page}");
    assert!(!page.contains("Edit the draft"), "only a draft is edited");
    let (status, at): (String, Option<chrono::NaiveDateTime>) = app.query(|conn| {
        digests::table
            .find(id)
            .select((digests::status, digests::scheduled_at))
            .first(conn)
    });
    assert_eq!(status, "scheduled");
    assert_eq!(at.unwrap().to_string(), "2099-01-05 08:00:00");

    let done = browser.post_ok(&format!("{path}/unschedule"), &[]).await;
    assert_eq!(done, format!("{path}?done=unscheduled"));
    let (_, page) = browser.get(&done).await;
    assert!(page.contains("Edit the draft") && !page.contains("Unschedule"));
    let status: String =
        app.query(|conn| digests::table.find(id).select(digests::status).first(conn));
    assert_eq!(status, "draft");
}

#[tokio::test]
async fn a_digest_composed_in_the_browser_is_in_the_archive_unless_the_box_is_unticked() {
    use diesel::prelude::*;
    use newsletter::db::schema::digests;
    let app = spawn_app().await;
    add_member(&app, "ann@clinic.example");
    let token = app.staff_token();
    app.draft_digest(&token).await;
    let browser = Browser::sign_in(&app, "ann@clinic.example").await;
    let (_, compose) = browser.get("/admin/digests/new").await;
    assert!(
        compose.contains("name=\"archive\" value=\"yes\" checked"),
        "ticked by default:\n{compose}"
    );
    let shown = browser
        .post_ok(
            "/admin/digests",
            &[("subject", "Shown"), ("article", "1"), ("archive", "yes")],
        )
        .await;
    let hidden = browser
        .post_ok("/admin/digests", &[("subject", "Hidden"), ("article", "1")])
        .await;
    let archive_of = |location: &str| -> bool {
        let id: i64 = location
            .trim_start_matches("/admin/digests/")
            .split('?')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        app.query(|conn| digests::table.find(id).select(digests::archive).first(conn))
    };
    assert!(archive_of(&shown));
    assert!(!archive_of(&hidden));
    let (_, edit) = browser
        .get(&format!("{}/edit", hidden.split('?').next().unwrap()))
        .await;
    assert!(edit.contains("name=\"archive\" value=\"yes\">"), "{edit}");
}

#[tokio::test]
async fn staff_add_run_and_remove_an_automation_in_the_browser() {
    let app = spawn_app().await;
    add_member(&app, "ann@clinic.example");
    let browser = Browser::sign_in(&app, "ann@clinic.example").await;
    let (status, page) = browser.get("/admin/automations").await;
    let page = page.replace("&#x2f;", "/");
    assert_eq!(status, 200);
    assert!(page.contains("No automations yet"), "{page}");
    assert!(
        page.contains("value=\"0 9 * * MON\""),
        "a sensible first schedule"
    );
    assert!(page.contains("href=\"/admin/automations\" aria-current=\"page\""));

    // A schedule that is not one comes back with what was typed and why.
    let feed = crate::helpers::serve_feed(crate::helpers::FEED);
    let refused = browser
        .post(
            "/admin/automations",
            &[
                ("feed_url", feed.as_str()),
                ("schedule", "every monday"),
                ("subject", "Latest research"),
                ("mode", "draft"),
                ("notify", ""),
            ],
        )
        .await;
    assert_eq!(refused.status().as_u16(), 422);
    let refused = refused.text().await.unwrap();
    assert!(refused.contains("must have 5 fields"), "{refused}");
    assert!(refused.contains("value=\"every monday\""));

    let done = browser
        .post_ok(
            "/admin/automations",
            &[
                ("feed_url", feed.as_str()),
                ("schedule", "0 9 * * MON"),
                ("subject", "Latest research: {{ date }}"),
                ("mode", "draft"),
                ("notify", "ann@clinic.example"),
            ],
        )
        .await;
    assert_eq!(done, "/admin/automations?done=automation-added");
    let (_, page) = browser.get(&done).await;
    assert!(page.contains("The automation was added."));
    assert!(
        page.contains("a draft to review") && page.contains("not yet"),
        "{page}"
    );

    let done = browser.post_ok("/admin/automations/1/run", &[]).await;
    assert_eq!(done, "/admin/automations?done=automation-ran");
    let (_, page) = browser.get(&done).await;
    let page = page.replace("&#x2f;", "/");
    assert!(page.contains("ready for review"), "{page}");
    assert!(
        page.contains("<a href=\"/admin/digests/1\">Open digest 1</a>"),
        "{page}"
    );
    let review = app.smtp.wait_for("ann@clinic.example", 1).await;
    assert!(
        review[0]
            .subject()
            .starts_with("Ready for review: Latest research: ")
    );

    let done = browser.post_ok("/admin/automations/1/delete", &[]).await;
    let (_, page) = browser.get(&done).await;
    assert!(page.contains("The automation was removed.") && page.contains("No automations yet"));
    assert_eq!(
        browser
            .post("/admin/automations/1/run", &[])
            .await
            .status()
            .as_u16(),
        404
    );
}

#[tokio::test]
async fn staff_see_what_came_back_on_the_digest_and_the_person() {
    let app = spawn_app().await;
    add_member(&app, "ann@clinic.example");
    app.seed_people(&[
        ("userunknown@bouncehammer.jp", None),
        ("redacted@example.net", None),
    ]);
    let token = app.staff_token();
    let digest = app.queued_digest(&token).await;
    app.wait_until_sent(&token, digest).await;
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/bounces");
    for file in ["lhost-sendmail-01.eml", "arf-01.eml"] {
        let raw = std::fs::read(format!("{fixtures}/{file}")).unwrap();
        newsletter::bounces::process(&app.db, &app.settings, None, &raw, None)
            .await
            .unwrap();
    }
    let browser = Browser::sign_in(&app, "ann@clinic.example").await;
    let (_, page) = browser.get(&format!("/admin/digests/{digest}")).await;
    assert!(
        page.contains(
            "Came back afterwards: 1 hard bounce (those readers are marked bounced) and 1 complaint"
        ),
        "{page}"
    );
    let id = app.subscriber_id("userunknown@bouncehammer.jp");
    let (_, person) = browser.get(&format!("/admin/subscribers/{id}")).await;
    assert!(person.contains("bounce-mail"), "{person}");
    assert!(
        person.contains("5.1.1") && person.contains("User Unknown"),
        "{person}"
    );
}
