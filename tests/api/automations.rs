//! Digests that make themselves: an automation polls the site's feed (conditionally: ETag),
//! imports what is new, and makes a digest of it that waits for review (staff are mailed) or
//! goes out. Nothing new, no digest. Several instances run each due time once; a run found
//! more than the grace late is skipped.

use std::sync::{Arc, Mutex};

use chrono::{Datelike, NaiveDateTime, TimeZone, Timelike, Utc};
use diesel::prelude::*;
use newsletter::db::schema::{automations, digests};

use crate::helpers::{TestApp, spawn_app_with, spawn_app_without_worker};

/// A feed server: answers 304 to a request naming its current ETag, else the feed with it.
#[derive(Clone, Default)]
struct Feed {
    state: Arc<Mutex<FeedState>>,
}

#[derive(Default)]
struct FeedState {
    items: Vec<(String, String)>,
    version: u32,
    requests: usize,
    not_modified: usize,
}

impl Feed {
    fn with(items: &[(&str, &str)]) -> Feed {
        let feed = Feed::default();
        feed.set(items);
        feed
    }

    /// New content (and so a new ETag).
    fn set(&self, items: &[(&str, &str)]) {
        let mut state = self.state.lock().unwrap();
        state.items = items
            .iter()
            .map(|(t, s)| (t.to_string(), s.to_string()))
            .collect();
        state.version += 1;
    }

    fn counts(&self) -> (usize, usize) {
        let state = self.state.lock().unwrap();
        (state.requests, state.not_modified)
    }

    fn body(state: &FeedState) -> String {
        let items: String = state
            .items
            .iter()
            .map(|(title, slug)| {
                format!(
                    "<item><title>{title}</title><link>https://clinic.example/{slug}</link>\
                     <guid>{slug}</guid><pubDate>Mon, 30 Nov 2026 10:00:00 GMT</pubDate>\
                     <description>About {title}.</description></item>"
                )
            })
            .collect();
        format!(
            "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>Clinic research</title>\
             <link>https://clinic.example/</link><description>Research</description>{items}\
             </channel></rss>"
        )
    }

    /// Serves it on a free loopback port; the feed's URL.
    fn serve(&self) -> String {
        let feed = self.clone();
        crate::helpers::serve_http(move |request| {
            let mut state = feed.state.lock().unwrap();
            state.requests += 1;
            let etag = format!("\"v{}\"", state.version);
            let asked = request
                .headers()
                .get("if-none-match")
                .and_then(|v| v.to_str().ok());
            if asked == Some(etag.as_str()) {
                state.not_modified += 1;
                return actix_web::HttpResponse::NotModified().finish();
            }
            actix_web::HttpResponse::Ok()
                .content_type("application/rss+xml")
                .insert_header(("ETag", etag))
                .body(Feed::body(&state))
        })
    }
}

const TWO: &[(&str, &str)] = &[
    ("Prolotherapy after failed back surgery", "prolotherapy"),
    ("PRP for sacroiliac joint pain", "prp"),
];

fn add_staff_member(app: &TestApp, email: &str) {
    let mut conn = app.db.get().unwrap();
    newsletter::db::staff::add_staff(&mut conn, email, Some("Ann Lee"), None).unwrap();
}

async fn create(app: &TestApp, token: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    let response = app.admin_post(token, "/automations", body).await;
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn run_now(app: &TestApp, token: &str, id: i64) -> serde_json::Value {
    let response = app
        .admin_post(
            token,
            &format!("/automations/{id}/run"),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(response.status().as_u16(), 200);
    response.json().await.unwrap()
}

fn digest_count(app: &TestApp) -> i64 {
    app.query(|conn| digests::table.count().get_result(conn))
}

/// Today on the clinic's clock, as subjects show it.
fn today_in(zone: chrono_tz::Tz) -> String {
    Utc::now()
        .with_timezone(&zone)
        .format("%-d %B %Y")
        .to_string()
}

#[tokio::test]
async fn a_draft_automation_makes_a_digest_of_what_is_new_and_mails_staff_to_review_it() {
    let app = spawn_app_with(|s| s.site.timezone = "Europe/Berlin".into()).await;
    add_staff_member(&app, "ann@clinic.example");
    add_staff_member(&app, "bo@clinic.example");
    let token = app.staff_token();
    let feed = Feed::with(TWO);
    let url = feed.serve();
    let (status, automation) = create(
        &app,
        &token,
        serde_json::json!({
            "feed_url": url,
            "schedule": "0 9 * * MON",
            "subject": "Latest research: {{ date }}",
            "mode": "draft",
        }),
    )
    .await;
    assert_eq!(status, 201, "{automation}");
    // Next Monday, 09:00 on the clinic's clock.
    let berlin: chrono_tz::Tz = "Europe/Berlin".parse().unwrap();
    let next = NaiveDateTime::parse_from_str(
        automation["next_run_at"].as_str().unwrap(),
        "%Y-%m-%dT%H:%M:%S",
    )
    .unwrap();
    let local = Utc.from_utc_datetime(&next).with_timezone(&berlin);
    assert_eq!(
        (local.weekday(), local.hour(), local.minute()),
        (chrono::Weekday::Mon, 9, 0)
    );
    assert!(next > Utc::now().naive_utc());
    assert!(next - Utc::now().naive_utc() <= chrono::Duration::days(7));
    assert_eq!(automation["timezone"], "Europe/Berlin");
    let id = automation["id"].as_i64().unwrap();

    let run = run_now(&app, &token, id).await;
    assert_eq!(run["result"], "draft", "{run}");
    assert_eq!(run["imported"], 2);
    let digest_id = run["digest_id"].as_i64().unwrap();
    let digest = app
        .admin_json(&token, &format!("/digests/{digest_id}"))
        .await;
    assert_eq!(digest["status"], "draft");
    let subject = format!("Latest research: {}", today_in(berlin));
    assert_eq!(digest["subject"], subject.as_str());

    // Every staff account is told, with a link to the draft.
    for staff in ["ann@clinic.example", "bo@clinic.example"] {
        let mail = app.smtp.wait_for(staff, 1).await.remove(0);
        assert_eq!(mail.subject(), format!("Ready for review: {subject}"));
        assert_eq!(
            mail.link("/admin/digests/"),
            app.url(&format!("/admin/digests/{digest_id}"))
        );
        assert!(mail.text().contains("PRP for sacroiliac joint pain"));
        assert!(
            mail.header("List-Unsubscribe").is_none(),
            "staff mail, not a newsletter"
        );
    }

    // Unchanged feed: a conditional request, a 304, and no digest.
    let run = run_now(&app, &token, id).await;
    assert_eq!(run["result"], "nothing-new", "{run}");
    assert_eq!(feed.counts(), (2, 1));
    assert_eq!(digest_count(&app), 1);

    // A new item: a digest of it alone.
    let mut three = TWO.to_vec();
    three.push(("Ozone for knee pain", "ozone"));
    feed.set(&three);
    let run = run_now(&app, &token, id).await;
    assert_eq!(run["result"], "draft", "{run}");
    assert_eq!(run["imported"], 1);
    let newest = run["digest_id"].as_i64().unwrap();
    let preview = app
        .admin_get(&token, &format!("/digests/{newest}/preview?format=text"))
        .await
        .text()
        .await
        .unwrap();
    assert!(preview.contains("Ozone for knee pain"), "{preview}");
    assert!(!preview.contains("PRP for sacroiliac"), "{preview}");

    // Changed but nothing unknown in it: nothing new.
    feed.set(&three[1..]);
    let run = run_now(&app, &token, id).await;
    assert_eq!(run["result"], "nothing-new");
    assert!(
        run["outcome"].as_str().unwrap().contains("all known"),
        "{run}"
    );
    assert_eq!(digest_count(&app), 2);

    let listed = app.admin_json(&token, "/automations").await;
    let listed = &listed["automations"][0];
    assert!(
        listed["last_outcome"]
            .as_str()
            .unwrap()
            .contains("all known")
    );
    assert_eq!(listed["last_digest_id"], newest);
    assert!(
        listed["schedule_description"]
            .as_str()
            .unwrap()
            .contains("09:00"),
        "{listed}"
    );
}

#[tokio::test]
async fn a_send_automation_sends_its_digest_and_without_a_postal_address_tells_staff_why_not() {
    let app = spawn_app_with(|_| {}).await;
    app.seed_confirmed("reader", 3);
    let token = app.staff_token();
    let url = Feed::with(TWO).serve();
    let (status, automation) = create(
        &app,
        &token,
        serde_json::json!({
            "feed_url": url, "schedule": "0 9 * * *", "subject": "{{ count }} new studies",
            "mode": "send", "notify": ["ann@clinic.example"],
        }),
    )
    .await;
    assert_eq!(status, 201, "{automation}");
    let run = run_now(&app, &token, automation["id"].as_i64().unwrap()).await;
    assert_eq!(run["result"], "sending", "{run}");
    let digest_id = run["digest_id"].as_i64().unwrap();
    let sent = app.wait_until_sent(&token, digest_id).await;
    assert_eq!(sent["sent"], 3);
    let mail = app.smtp.wait_for("reader0@example.org", 1).await.remove(0);
    assert_eq!(mail.subject(), "2 new studies");
    assert!(app.smtp.messages_to("ann@clinic.example").is_empty());

    // The same, for a clinic that has not given its postal address yet.
    let app = spawn_app_with(|s| s.site.postal_address = String::new()).await;
    app.seed_confirmed("reader", 1);
    let token = app.staff_token();
    let url = Feed::with(TWO).serve();
    let (_, automation) = create(
        &app,
        &token,
        serde_json::json!({
            "feed_url": url, "schedule": "0 9 * * *", "subject": "Latest research",
            "mode": "send", "notify": ["ann@clinic.example"],
        }),
    )
    .await;
    let run = run_now(&app, &token, automation["id"].as_i64().unwrap()).await;
    assert_eq!(run["result"], "not-sent", "{run}");
    assert!(run["outcome"].as_str().unwrap().contains("postal address"));
    let digest = app
        .admin_json(&token, &format!("/digests/{}", run["digest_id"]))
        .await;
    assert_eq!(digest["status"], "draft");
    let told = app.smtp.wait_for("ann@clinic.example", 1).await.remove(0);
    assert_eq!(told.subject(), "Not sent: Latest research");
    assert!(told.text().contains("postal address"), "{}", told.text());
    assert!(app.smtp.messages_to("reader0@example.org").is_empty());
}

#[tokio::test]
async fn what_staff_give_is_checked_and_a_feed_that_cannot_be_had_is_reported() {
    let app = spawn_app_with(|_| {}).await;
    let token = app.staff_token();
    let good = serde_json::json!({
        "feed_url": "http://127.0.0.1:9/feed.xml", "schedule": "0 9 * * MON",
        "subject": "Latest research: {{ date }}", "mode": "draft",
    });
    for (field, value, says) in [
        ("schedule", "0 9 * * * *", "5 fields"),
        ("schedule", "every monday", "5 fields"),
        ("subject", "Latest research: {{ dtae }}", "not a template"),
        ("mode", "publish", "mode must be"),
        ("feed_url", "file:///etc/passwd", "http"),
    ] {
        let mut body = good.clone();
        body[field] = serde_json::json!(value);
        let (status, answer) = create(&app, &token, body).await;
        assert_eq!(status, 422, "{field}={value}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(says),
            "{field}={value}: {answer}"
        );
    }
    let unauthorized = app
        .client
        .get(app.url("/admin/api/automations"))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status().as_u16(), 401);

    // Nothing listens there: the run fails, says why, and the outcome stays for staff.
    let (status, automation) = create(&app, &token, good).await;
    assert_eq!(status, 201);
    let id = automation["id"].as_i64().unwrap();
    let run = run_now(&app, &token, id).await;
    assert_eq!(run["result"], "failed");
    assert!(
        run["outcome"]
            .as_str()
            .unwrap()
            .contains("could not be reached"),
        "{run}"
    );
    let listed = app.admin_json(&token, "/automations").await;
    assert_eq!(listed["automations"][0]["last_outcome"], run["outcome"]);

    assert_eq!(
        app.admin_delete(&token, &format!("/automations/{id}"))
            .await
            .status()
            .as_u16(),
        204
    );
    assert_eq!(
        app.admin_delete(&token, &format!("/automations/{id}"))
            .await
            .status()
            .as_u16(),
        404
    );
    let missing = app
        .admin_post(
            &token,
            &format!("/automations/{id}/run"),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(missing.status().as_u16(), 404);
}

fn set_next_run(app: &TestApp, id: i64, at: NaiveDateTime) {
    app.query(|conn| {
        diesel::update(automations::table.find(id))
            .set(automations::next_run_at.eq(at))
            .execute(conn)
    });
}

fn next_run(app: &TestApp, id: i64) -> NaiveDateTime {
    app.query(|conn| {
        automations::table
            .find(id)
            .select(automations::next_run_at)
            .first(conn)
    })
}

#[tokio::test]
async fn the_running_service_runs_a_due_automation_by_itself() {
    let app = spawn_app_with(|_| {}).await;
    app.seed_confirmed("reader", 2);
    let token = app.staff_token();
    let feed = Feed::with(TWO);
    let (_, automation) = create(
        &app,
        &token,
        serde_json::json!({"feed_url": feed.serve(), "schedule": "0 9 * * *",
                           "subject": "Latest research", "mode": "send"}),
    )
    .await;
    let id = automation["id"].as_i64().unwrap();
    set_next_run(
        &app,
        id,
        Utc::now().naive_utc() - chrono::Duration::seconds(1),
    );
    let mails = app.smtp.wait_for("reader1@example.org", 1).await;
    assert_eq!(mails[0].subject(), "Latest research");
    assert!(
        next_run(&app, id) > Utc::now().naive_utc(),
        "moved to its next time"
    );
    assert_eq!(feed.counts().0, 1);
}

#[tokio::test]
async fn several_instances_run_a_due_automation_once_and_a_run_long_overdue_is_skipped() {
    let app = spawn_app_without_worker(|_| {}).await;
    let token = app.staff_token();
    let feed = Feed::with(TWO);
    let (_, automation) = create(
        &app,
        &token,
        serde_json::json!({"feed_url": feed.serve(), "schedule": "*/5 * * * *",
                           "subject": "Latest research", "mode": "draft",
                           "notify": ["ann@clinic.example"]}),
    )
    .await;
    let id = automation["id"].as_i64().unwrap();
    set_next_run(
        &app,
        id,
        Utc::now().naive_utc() - chrono::Duration::seconds(1),
    );

    // Three instances, each its own pool, looking at once.
    let schedulers: Vec<_> = (0..3)
        .map(|_| {
            newsletter::scheduler::Scheduler::new(
                &newsletter::startup::build_parts(&app.settings).unwrap(),
                Arc::new(app.settings.clone()),
                Default::default(),
            )
        })
        .collect();
    let runs =
        futures_util::future::join_all(schedulers.iter().map(|s| s.run_due_automations())).await;
    let ran: Vec<_> = runs.into_iter().flatten().collect();
    assert_eq!(ran.len(), 1, "{ran:?}");
    assert_eq!(feed.counts().0, 1, "the feed was fetched once");
    assert_eq!(digest_count(&app), 1);
    assert!(next_run(&app, id) > Utc::now().naive_utc());

    // Due while the service was down, longer ago than the grace (60 minutes): skipped, the
    // feed not even fetched; the next run is on time.
    set_next_run(
        &app,
        id,
        Utc::now().naive_utc() - chrono::Duration::minutes(61),
    );
    let ran = schedulers[0].run_due_automations().await;
    assert!(ran.is_empty());
    assert_eq!(feed.counts().0, 1);
    let listed = app.admin_json(&token, "/automations").await;
    let outcome = listed["automations"][0]["last_outcome"].as_str().unwrap();
    assert!(outcome.starts_with("skipped"), "{outcome}");
    assert!(next_run(&app, id) > Utc::now().naive_utc());
}

#[tokio::test]
async fn the_command_line_adds_lists_runs_and_removes_automations() {
    let app = spawn_app_without_worker(|_| {}).await;
    let feed = Feed::with(TWO);
    let url = feed.serve();
    // The command runs off this test's thread, which serves the feed.
    let run = |args: &[&str]| {
        let mut command = app.command(args);
        command.env("NEWSLETTER__FEEDS__ALLOW_PRIVATE_NETWORKS", "true");
        async move {
            let (code, said) = crate::helpers::output_of(command).await;
            (code == Some(0), said)
        }
    };
    let (ok, said) = run(&[
        "automation",
        "add",
        "--feed",
        &url,
        "--schedule",
        "0 9 * * MON",
        "--subject",
        "Latest research: {{ date }}",
        "--mode",
        "draft",
        "--notify",
        "ann@clinic.example",
    ])
    .await;
    assert!(ok, "{said}");
    assert!(said.contains("automation 1 added"), "{said}");
    let (ok, said) = run(&[
        "automation",
        "add",
        "--feed",
        &url,
        "--schedule",
        "9 * *",
        "--subject",
        "x",
        "--mode",
        "draft",
    ])
    .await;
    assert!(!ok && said.contains("5 fields"), "{said}");

    let (ok, said) = run(&["automation", "run", "1"]).await;
    assert!(ok, "{said}");
    assert!(said.contains("ready for review"), "{said}");
    assert_eq!(app.smtp.wait_for("ann@clinic.example", 1).await.len(), 1);
    let (ok, said) = run(&["automation", "list"]).await;
    assert!(
        ok && said.contains("0 9 * * MON") && said.contains("ready for review"),
        "{said}"
    );
    let (ok, said) = run(&["automation", "remove", "1"]).await;
    assert!(ok && said.contains("removed"), "{said}");
    let (ok, said) = run(&["automation", "remove", "1"]).await;
    assert!(!ok && said.contains("does not exist"), "{said}");
}
