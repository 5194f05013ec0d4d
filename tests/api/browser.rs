//! The staff pages in a real headless Chromium, driven through WebDriver (Debian's `chromium`
//! and `chromium-driver`; `.ci/run` installs them): a person signs in, imports articles,
//! composes and previews a digest, sends a test that arrives over SMTP, sends it after the
//! confirmation step, watches it finish, pauses and resumes, finds and erases a person and signs
//! out; and the refusals they can meet. Every page passes axe-core with no violations and has no
//! horizontal scroll at 375 px.
//!
//! With `NEWSLETTER_SCREENSHOTS=docs/screenshots` the test also writes the README's screenshots.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use newsletter::db::staff::add_staff;
use newsletter::domain::password::hash_password;
use secrecy::SecretString;

use crate::helpers::{FEED, TestApp, free_port, serve_feed, spawn_app, spawn_app_with};

const PASSWORD: &str = "correct horse battery";
const AXE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/browser/node_modules/axe-core/axe.min.js"
);

/// A chromedriver of this test, stopped when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts chromedriver and a headless Chromium session; `None` (the test is skipped, with a
/// note) only outside CI when the browser is not installed.
async fn browser() -> Option<(Driver, Client)> {
    let installed = std::path::Path::new("/usr/bin/chromedriver").exists();
    if !installed {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install chromium and chromium-driver (see .ci/run)"
        );
        eprintln!(
            "skipped: /usr/bin/chromedriver is not installed (apt-get install chromium chromium-driver)"
        );
        return None;
    }
    assert!(
        std::path::Path::new(AXE).exists(),
        "axe-core is missing: npm ci --prefix tests/browser"
    );
    let port = free_port();
    let child = Command::new("/usr/bin/chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900"],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let mut last_error = None;
    for _ in 0..50 {
        match ClientBuilder::new(connector.clone())
            .capabilities(capabilities.clone())
            .connect(&driver.url)
            .await
        {
            Ok(client) => return Some((driver, client)),
            Err(e) => last_error = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("no WebDriver session: {last_error:?}");
}

fn add_member(app: &TestApp, email: &str) {
    let hash = hash_password(&SecretString::from(PASSWORD.to_string())).unwrap();
    let mut conn = app.db.get().unwrap();
    add_staff(&mut conn, email, Some("Ann Lee"), Some(&hash)).unwrap();
}

async fn button(c: &Client, text: &str) -> fantoccini::elements::Element {
    c.find(Locator::XPath(&format!(
        "//button[normalize-space()=\"{text}\"]"
    )))
    .await
    .unwrap_or_else(|e| panic!("a button {text:?}: {e}"))
}

async fn link(c: &Client, text: &str) -> fantoccini::elements::Element {
    c.find(Locator::XPath(&format!(
        "//a[starts-with(normalize-space(), \"{text}\")]"
    )))
    .await
    .unwrap_or_else(|e| panic!("a link {text:?}: {e}"))
}

async fn fill(c: &Client, css: &str, text: &str) {
    let field = c
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"));
    field.clear().await.unwrap();
    field.send_keys(text).await.unwrap();
}

/// The page's visible text, read in one step (a page that reloads itself leaves no stale element).
async fn body_text(c: &Client) -> String {
    for _ in 0..20 {
        if let Ok(serde_json::Value::String(text)) = c
            .execute(
                "return document.body ? document.body.innerText : '';",
                vec![],
            )
            .await
        {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the page's text could not be read")
}

async fn path(c: &Client) -> String {
    let url = c.current_url().await.unwrap();
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    }
}

/// Waits until the page's text contains `text` (reloading only if `reload`).
async fn wait_for_text(c: &Client, text: &str, reload: bool) {
    for _ in 0..150 {
        if body_text(c).await.contains(text) {
            return;
        }
        if reload {
            c.refresh().await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the page never said {text:?}: {}", body_text(c).await);
}

/// The page as its users meet it: axe-core finds no violations, at 375 px nothing scrolls
/// sideways, and the title and the first heading say where you are.
async fn check_page(c: &Client, heading: &str) {
    // A page that updates itself may reload in the middle of a check: then the check starts
    // again on the new page. Findings are assertions and end the test at once.
    for _ in 0..5 {
        match try_check_page(c, heading).await {
            Ok(()) => return,
            Err(e) => {
                eprintln!("the page changed during the check ({e}); checking again");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    }
    panic!("{heading}: the page kept changing during the checks");
}

async fn try_check_page(c: &Client, heading: &str) -> Result<(), fantoccini::error::CmdError> {
    let title = c.title().await?;
    assert!(title.contains(heading), "title {title:?} for {heading:?}");
    let h1 = c
        .execute(
            "const h = document.querySelector('h1'); return h ? h.innerText : '';",
            vec![],
        )
        .await?;
    let h1 = h1.as_str().unwrap_or_default().to_string();
    assert!(h1.contains(heading), "h1 {h1:?} for {heading:?}");
    let axe = std::fs::read_to_string(AXE).unwrap();
    for width in [375u32, 1280] {
        c.set_window_size(width, 900).await?;
        c.execute(&axe, vec![]).await?;
        let violations = c
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 axe.run(document, { resultTypes: ['violations'] })
                   .then(r => done(r.violations.map(v => v.id + ': ' + v.help + ' at ' +
                      v.nodes.map(n => n.target.join(' ')).join(', '))))
                   .catch(e => done(['axe failed: ' + e]));",
                vec![],
            )
            .await?;
        assert_eq!(violations, serde_json::json!([]), "{heading} at {width} px");
        if width == 375 {
            let sideways = c
                .execute(
                    "return document.documentElement.scrollWidth - document.documentElement.clientWidth;",
                    vec![],
                )
                .await?;
            assert_eq!(
                sideways,
                serde_json::json!(0),
                "{heading}: horizontal scroll at 375 px"
            );
        }
    }
    Ok(())
}

/// Saves screenshots (1100 px and a phone's 375 px) for the README when NEWSLETTER_SCREENSHOTS
/// names a folder.
async fn screenshot(c: &Client, name: &str) {
    let Some(dir) = std::env::var_os("NEWSLETTER_SCREENSHOTS") else {
        return;
    };
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (width, suffix) in [(1100, ""), (375, "-phone")] {
        c.set_window_size(width, 900).await.unwrap();
        let png = c.screenshot().await.unwrap();
        std::fs::write(dir.join(format!("{name}{suffix}.png")), png).unwrap();
    }
}

async fn sign_in_with_keyboard(c: &Client, app: &TestApp) {
    c.goto(&app.url("/admin")).await.unwrap();
    assert_eq!(path(c).await, "/admin/login");
    check_page(c, "Sign in").await;
    // Keyboard alone: the address field has the focus, Tab moves on, Enter signs in.
    let email = c.active_element().await.unwrap();
    email.send_keys("ann@clinic.example").await.unwrap();
    email
        .send_keys(&char::from(Key::Tab).to_string())
        .await
        .unwrap();
    let password = c.active_element().await.unwrap();
    assert_eq!(
        password.attr("id").await.unwrap().as_deref(),
        Some("password")
    );
    password.send_keys(PASSWORD).await.unwrap();
    password
        .send_keys(&char::from(Key::Enter).to_string())
        .await
        .unwrap();
    wait_for_text(c, "The list", false).await;
    assert_eq!(path(c).await, "/admin");
}

#[tokio::test]
async fn a_person_runs_the_newsletter_in_the_browser() {
    let Some((_driver, c)) = browser().await else {
        return;
    };
    let app = spawn_app().await;
    add_member(&app, "ann@clinic.example");
    let readers = app.seed_confirmed("reader", 20);
    app.seed_people(&[("anna.berg@example.org", Some("Anna Berg"))]);

    sign_in_with_keyboard(&c, &app).await;
    check_page(&c, "Dashboard").await;
    let dashboard = body_text(&c).await;
    assert!(dashboard.contains("No delivery worker is running") || dashboard.contains("Confirmed"));
    screenshot(&c, "dashboard").await;

    // Articles from the site's feed.
    link(&c, "Articles").await.click().await.unwrap();
    check_page(&c, "Articles").await;
    fill(&c, "#feed_url", &serve_feed(FEED)).await;
    button(&c, "Import from feed").await.click().await.unwrap();
    wait_for_text(&c, "Imported 2 new articles", false).await;
    check_page(&c, "Articles").await;
    link(&c, "Prolotherapy after failed back surgery")
        .await
        .click()
        .await
        .unwrap();
    check_page(&c, "Edit article").await;
    link(&c, "← Articles").await.click().await.unwrap();

    // Compose, with the Markdown preview as one types.
    link(&c, "Digests").await.click().await.unwrap();
    check_page(&c, "Digests").await;
    link(&c, "New digest").await.click().await.unwrap();
    check_page(&c, "New digest").await;
    fill(&c, "#subject", "Latest research").await;
    fill(&c, "#intro", "Two new **studies** this month.").await;
    for _ in 0..50 {
        let preview = c.find(Locator::Css("#intro-preview strong")).await;
        if preview.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let strong = c
        .find(Locator::Css("#intro-preview strong"))
        .await
        .expect("the live preview");
    assert_eq!(strong.text().await.unwrap(), "studies");
    let ticked = c
        .find_all(Locator::Css("input[name=article]:checked"))
        .await
        .unwrap();
    assert_eq!(ticked.len(), 2, "articles not yet sent are ticked");
    screenshot(&c, "compose").await;
    button(&c, "Save draft").await.click().await.unwrap();
    wait_for_text(&c, "The draft was saved.", false).await;
    check_page(&c, "Latest research").await;
    screenshot(&c, "draft").await;
    // The preview frame holds the mail as a reader gets it.
    c.enter_frame(0).await.unwrap();
    let frame = body_text(&c).await;
    assert!(
        frame.contains("Prolotherapy after failed back surgery"),
        "{frame}"
    );
    c.enter_parent_frame().await.unwrap();

    // A test to oneself, over SMTP.
    let test_field = c.find(Locator::Css("#test-email")).await.unwrap();
    assert_eq!(
        test_field.prop("value").await.unwrap().as_deref(),
        Some("ann@clinic.example")
    );
    button(&c, "Send test").await.click().await.unwrap();
    wait_for_text(&c, "The test was sent.", false).await;
    let test = app.smtp.wait_for("ann@clinic.example", 1).await;
    assert_eq!(test[0].subject(), "[Test] Latest research");

    // Send, through the confirmation step, and watch it finish (the page updates itself).
    // Slow enough (21 readers, 2 connections: about 5 s) that Pause comes while it sends.
    app.smtp.take_time(Duration::from_millis(500));
    link(&c, "Send to 21 confirmed subscribers")
        .await
        .click()
        .await
        .unwrap();
    check_page(&c, "Send 'Latest research'").await;
    assert!(
        body_text(&c)
            .await
            .contains("Send 'Latest research' to 21 confirmed subscribers?")
    );
    screenshot(&c, "confirm").await;
    assert!(
        app.smtp.messages_to(&readers[0]).is_empty(),
        "nothing before Yes"
    );
    button(&c, "Yes, send now").await.click().await.unwrap();
    wait_for_text(&c, "The digest is being sent.", false).await;
    check_page(&c, "Latest research").await;
    screenshot(&c, "sending").await;
    button(&c, "Pause").await.click().await.unwrap();
    wait_for_text(&c, "The send is paused.", false).await;
    assert!(body_text(&c).await.contains("paused by Ann Lee"));
    let paused_at = app.smtp.all_messages().len();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let still = app.smtp.all_messages().len();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        app.smtp.all_messages().len(),
        still,
        "nothing goes out while paused"
    );
    assert!(paused_at < 22, "paused before the end");
    // Cancel asks first; "No" leaves the send as it was.
    link(&c, "Cancel the send").await.click().await.unwrap();
    check_page(&c, "Cancel the send of 'Latest research'?").await;
    link(&c, "No, let it go on").await.click().await.unwrap();
    wait_for_text(&c, "paused by Ann Lee", false).await;
    button(&c, "Resume").await.click().await.unwrap();
    wait_for_text(&c, "The send goes on.", false).await;
    // The script's polling reloads the page when the status changes.
    wait_for_text(&c, "finished", false).await;
    let finished = body_text(&c).await;
    assert!(finished.contains("sent"), "{finished}");
    assert!(!finished.contains("Pause"));
    for reader in &readers {
        assert_eq!(app.smtp.wait_for(reader, 1).await.len(), 1);
    }

    // What went out is in the public archive, as readers' "View in browser" opens it.
    c.goto(&app.url("/archive")).await.unwrap();
    check_page(&c, "All digests").await;
    screenshot(&c, "archive").await;
    link(&c, "Latest research").await.click().await.unwrap();
    check_page(&c, "Latest research").await;
    assert!(body_text(&c).await.contains("Get the next one by mail"));
    screenshot(&c, "archive-digest").await;

    // An automation: added, run now, its outcome shown.
    c.goto(&app.url("/admin/automations")).await.unwrap();
    check_page(&c, "Automations").await;
    fill(&c, "#feed_url", &serve_feed(FEED)).await;
    button(&c, "Add automation").await.click().await.unwrap();
    wait_for_text(&c, "The automation was added.", false).await;
    check_page(&c, "Automations").await;
    button(&c, "Run now").await.click().await.unwrap();
    wait_for_text(&c, "The automation ran", false).await;
    assert!(
        body_text(&c).await.contains("nothing new"),
        "the feed was imported already"
    );
    check_page(&c, "Automations").await;
    screenshot(&c, "automations").await;

    // Find a person by name and erase them.
    link(&c, "Subscribers").await.click().await.unwrap();
    check_page(&c, "Subscribers").await;
    fill(&c, "#q", "anna").await;
    button(&c, "Search").await.click().await.unwrap();
    wait_for_text(&c, "People matching", false).await;
    screenshot(&c, "subscribers").await;
    link(&c, "anna.berg@example.org")
        .await
        .click()
        .await
        .unwrap();
    check_page(&c, "anna.berg@example.org").await;
    link(&c, "Erase").await.click().await.unwrap();
    check_page(&c, "Erase anna.berg@example.org?").await;
    button(&c, "Yes, erase this person")
        .await
        .click()
        .await
        .unwrap();
    wait_for_text(&c, "The person was erased.", false).await;
    assert_eq!(app.subscriber_status("anna.berg@example.org"), None);

    // The other pages pass the same checks.
    link(&c, "Staff").await.click().await.unwrap();
    check_page(&c, "Staff and tokens").await;
    screenshot(&c, "staff").await;
    link(&c, "Activity").await.click().await.unwrap();
    check_page(&c, "Activity").await;
    let log = body_text(&c).await;
    for action in [
        "signed in",
        "imported feed",
        "created digest",
        "sent test",
        "sent digest",
        "paused digest",
        "resumed digest",
        "erased a person",
    ] {
        assert!(log.contains(action), "{action}: {log}");
    }
    screenshot(&c, "activity").await;
    link(&c, "Ann Lee").await.click().await.unwrap();
    check_page(&c, "Your account").await;
    button(&c, "Set up two-factor sign-in")
        .await
        .click()
        .await
        .unwrap();
    check_page(&c, "Your account").await;
    // Turn it on with a code from "the app", then sign in with the password and a code.
    let secret = c
        .find(Locator::Css("input[name=secret]"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap()
        .unwrap();
    let totp = totp_rs::Builder::new()
        .with_secret(totp_rs::Secret::try_from_base32(&secret).unwrap())
        .with_account_name("ann@clinic.example")
        .build()
        .unwrap();
    fill(&c, "#code", &totp.generate_current().to_string()).await;
    button(&c, "Turn on two-factor sign-in")
        .await
        .click()
        .await
        .unwrap();
    wait_for_text(&c, "Keep these recovery codes", false).await;
    check_page(&c, "Your account").await;

    // A colleague's setup link opens the page where they choose a password.
    link(&c, "Staff").await.click().await.unwrap();
    fill(&c, "#staff-email", "bo@clinic.example").await;
    button(&c, "Add staff member").await.click().await.unwrap();
    wait_for_text(&c, "bo@clinic.example was added", false).await;
    let setup = c
        .find(Locator::Css(".notice .secret"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(setup.contains("/admin/setup?token="), "{setup}");

    button(&c, "Sign out").await.click().await.unwrap();
    wait_for_text(&c, "Sign in", false).await;
    c.goto(&app.url("/admin/digests")).await.unwrap();
    assert!(path(&c).await.starts_with("/admin/login"), "signed out");

    c.goto(&setup).await.unwrap();
    check_page(&c, "Choose your password").await;
    fill(&c, "#password", "bo's own long password").await;
    fill(&c, "#password_again", "bo's own long password").await;
    button(&c, "Set password").await.click().await.unwrap();
    wait_for_text(&c, "Your password is set", false).await;

    fill(&c, "#email", "ann@clinic.example").await;
    fill(&c, "#password", PASSWORD).await;
    button(&c, "Sign in").await.click().await.unwrap();
    wait_for_text(&c, "Enter your sign-in code", false).await;
    check_page(&c, "Enter your sign-in code").await;
    fill(&c, "#code", &totp.generate_current().to_string()).await;
    button(&c, "Sign in").await.click().await.unwrap();
    wait_for_text(&c, "The list", false).await;
    c.close().await.unwrap();
}

#[tokio::test]
async fn the_browser_meets_clear_refusals() {
    let Some((_driver, c)) = browser().await else {
        return;
    };
    let app = spawn_app_with(|s| s.admin.login_attempts_per_15_minutes = 3).await;
    add_member(&app, "ann@clinic.example");

    // A wrong password: the form again, with the address kept and a message.
    c.goto(&app.url("/admin/login")).await.unwrap();
    fill(&c, "#email", "ann@clinic.example").await;
    fill(&c, "#password", "not my password").await;
    button(&c, "Sign in").await.click().await.unwrap();
    wait_for_text(&c, "do not match an account", false).await;
    check_page(&c, "Sign in").await;
    let kept = c
        .find(Locator::Css("#email"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap();
    assert_eq!(kept.as_deref(), Some("ann@clinic.example"));

    // Signed in, then a form whose token was tampered with: 403, nothing changed.
    fill(&c, "#password", PASSWORD).await;
    button(&c, "Sign in").await.click().await.unwrap();
    wait_for_text(&c, "The list", false).await;
    c.goto(&app.url("/admin/articles")).await.unwrap();
    c.execute(
        "document.querySelectorAll('input[name=csrf]').forEach(i => i.value = 'forged');",
        vec![],
    )
    .await
    .unwrap();
    fill(&c, "#title", "Forged").await;
    fill(&c, "#url", "https://clinic.example/forged").await;
    button(&c, "Add article").await.click().await.unwrap();
    wait_for_text(&c, "nothing was changed", false).await;
    check_page(&c, "Not allowed").await;
    let articles: i64 = app.query(|conn| {
        use diesel::prelude::*;
        newsletter::db::schema::articles::table
            .count()
            .get_result(conn)
    });
    assert_eq!(articles, 0);

    // An expired session: the next page asks to sign in again and then goes where it was.
    app.query(|conn| {
        use diesel::prelude::*;
        use newsletter::db::schema::staff_sessions::dsl as s;
        diesel::update(s::staff_sessions)
            .set(s::last_seen_at.eq(newsletter::db::now() - chrono::Duration::hours(13)))
            .execute(conn)
    });
    c.goto(&app.url("/admin/subscribers")).await.unwrap();
    assert_eq!(path(&c).await, "/admin/login?next=%2Fadmin%2Fsubscribers");
    fill(&c, "#email", "ann@clinic.example").await;
    fill(&c, "#password", PASSWORD).await;
    button(&c, "Sign in").await.click().await.unwrap();
    wait_for_text(&c, "Everyone", false).await;
    assert_eq!(path(&c).await, "/admin/subscribers");

    // The fourth attempt within 15 minutes: a page that says how long to wait.
    button(&c, "Sign out").await.click().await.unwrap();
    wait_for_text(&c, "Sign in", false).await;
    fill(&c, "#email", "ann@clinic.example").await;
    fill(&c, "#password", PASSWORD).await;
    button(&c, "Sign in").await.click().await.unwrap();
    wait_for_text(&c, "Please wait", false).await;
    check_page(&c, "Too many attempts").await;
    c.close().await.unwrap();
}

/// The README's `fetch()` snippet on a page of the clinic's own site, talking to `service`.
fn clinic_page(service: &str) -> String {
    let readme = include_str!("../../README.md");
    let start = readme
        .find("```html\n<form id=\"newsletter\">")
        .expect("the fetch() snippet in the README")
        + "```html\n".len();
    let snippet = &readme[start..start + readme[start..].find("```").unwrap()];
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>The Spine Clinic</title></head><body><main><h1>The Spine Clinic</h1>{}</main></body></html>",
        snippet.replace("https://news.example.org", service)
    )
}

/// Serves the clinic's page at an origin of its own; returns its URL. The page is written once
/// the service's address is known (the service must know the page's origin first).
fn serve_clinic_page() -> (String, std::sync::Arc<std::sync::Mutex<String>>) {
    let page = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let served = page.clone();
    let url = crate::helpers::serve_http(move |_| {
        actix_web::HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .body(served.lock().unwrap().clone())
    });
    (url, page)
}

fn origin_of(url: &str) -> String {
    url::Url::parse(url).unwrap().origin().ascii_serialization()
}

#[tokio::test]
async fn a_visitor_signs_up_on_the_clinics_site_and_confirms_with_the_button() {
    let Some((_driver, c)) = browser().await else {
        return;
    };
    let (clinic_url, clinic) = serve_clinic_page();
    let (other_url, other) = serve_clinic_page();
    let app = spawn_app_with(|s| {
        s.signup.allowed_origins = vec![origin_of(&clinic_url)];
        s.site.name = "The Spine Clinic".into();
        s.site.url = "https://clinic.example".into();
        s.site.privacy_url = "https://clinic.example/privacy".into();
    })
    .await;
    *clinic.lock().unwrap() = clinic_page(&app.address);
    *other.lock().unwrap() = clinic_page(&app.address);

    // The README's snippet, on the clinic's own site: a real cross-origin fetch().
    c.goto(&clinic_url).await.unwrap();
    fill(&c, "#newsletter-email", "visitor@example.org").await;
    button(&c, "Subscribe").await.click().await.unwrap();
    wait_for_text(&c, "Almost done: we sent you a mail", false).await;
    let mail = app.smtp.wait_for("visitor@example.org", 1).await.remove(0);

    // A site the service does not name cannot: the browser stops it at the preflight.
    c.goto(&other_url).await.unwrap();
    fill(&c, "#newsletter-email", "elsewhere@example.org").await;
    button(&c, "Subscribe").await.click().await.unwrap();
    wait_for_text(&c, "We could not sign you up just now", false).await;
    assert_eq!(app.count_subscribers(), 1, "nothing from the other site");

    // The link in the mail opens a page with one button; only the button confirms.
    c.goto(&mail.link("/subscriptions/confirm")).await.unwrap();
    check_page(&c, "Confirm your subscription").await;
    screenshot(&c, "confirm").await;
    assert_eq!(
        app.subscriber_status("visitor@example.org").as_deref(),
        Some("pending")
    );
    button(&c, "Confirm my subscription")
        .await
        .click()
        .await
        .unwrap();
    wait_for_text(&c, "Thank you for confirming", false).await;
    check_page(&c, "You are subscribed").await;
    assert_eq!(
        app.subscriber_status("visitor@example.org").as_deref(),
        Some("confirmed")
    );
    let footer = body_text(&c).await;
    assert!(
        footer.contains("Back to clinic.example") && footer.contains("Privacy"),
        "{footer}"
    );

    // A mistyped address gets the clinic's page, not a blank one.
    c.goto(&app.url("/subscribe/thanx")).await.unwrap();
    check_page(&c, "Page not found").await;
    link(&c, "Go to the signup page")
        .await
        .click()
        .await
        .unwrap();
    check_page(&c, "Sign up").await;
}
