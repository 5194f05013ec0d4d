//! The `newsletter` binary as staff use it, beside a running service.

use std::process::{Command, Output};

use secrecy::ExposeSecret;

use crate::helpers::{FEED, TestApp, spawn_app, spawn_app_with};

fn cli(app: &TestApp, args: &[&str]) -> Output {
    app.command(args).output().unwrap()
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).to_string()
}

#[tokio::test]
async fn token_create_prints_a_token_once_that_opens_the_staff_api_until_revoked() {
    let app = spawn_app().await;
    let token = stdout(&cli(&app, &["token", "create", "editor"]))
        .trim()
        .to_string();
    assert_eq!(token.len(), 64);
    assert_eq!(
        app.admin_get(&token, "/articles").await.status().as_u16(),
        200
    );
    let again = cli(&app, &["token", "create", "editor"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let listed = stdout(&cli(&app, &["token", "list"]));
    assert!(listed.contains("editor") && listed.contains("active") && !listed.contains(&token));
    stdout(&cli(&app, &["token", "revoke", "editor"]));
    assert_eq!(
        app.admin_get(&token, "/articles").await.status().as_u16(),
        401
    );
}

#[tokio::test]
async fn staff_import_a_feed_file_compose_preview_and_send_a_digest_and_wait_for_it() {
    let app = spawn_app().await;
    let readers = app.seed_confirmed("reader", 5);
    let feed = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(feed.path(), FEED).unwrap();
    let feed_path = feed.path().to_str().unwrap();
    assert!(
        stdout(&cli(&app, &["articles", "import-feed", feed_path]))
            .contains("imported 2, skipped 0")
    );
    assert!(
        stdout(&cli(&app, &["articles", "import-feed", feed_path]))
            .contains("imported 0, skipped 2")
    );

    let created = stdout(&cli(
        &app,
        &[
            "digest",
            "create",
            "--subject",
            "Latest research",
            "--intro",
            "Two **new** studies.",
        ],
    ));
    assert!(
        created.contains("digest 1 created (draft) with 2 article(s)"),
        "{created}"
    );
    let preview = stdout(&cli(&app, &["digest", "preview", "1"]));
    assert!(
        preview.contains("Subject: Latest research")
            && preview.contains("https://clinic.example/prp-si-joint")
    );
    let html = stdout(&cli(&app, &["digest", "preview", "1", "--format", "html"]));
    assert!(html.contains("<strong>new</strong>"));
    stdout(&cli(
        &app,
        &["digest", "test", "1", "--email", "editor@clinic.example"],
    ));
    assert_eq!(
        app.smtp.wait_for("editor@clinic.example", 1).await[0].subject(),
        "[Test] Latest research"
    );

    let sent = stdout(&cli(&app, &["digest", "send", "1", "--wait"]));
    assert!(
        sent.contains("5 mail(s) queued")
            && sent.contains("digest 1 done: 5 sent, 0 failed, 0 skipped"),
        "{sent}"
    );
    for reader in &readers {
        assert_eq!(app.smtp.messages_to(reader).len(), 1);
    }
    assert!(stdout(&cli(&app, &["digest", "send", "1"])).contains("nothing more was queued"));
    let status = stdout(&cli(&app, &["digest", "status", "1"]));
    assert!(
        status.contains("recipients 5  queued 0  sent 5"),
        "{status}"
    );
    // Times to the second, in UTC, as staff read them (not chrono's nanoseconds).
    let times = status.lines().find(|l| l.starts_with("started ")).unwrap();
    let words: Vec<&str> = times.split_whitespace().collect();
    assert_eq!(words.len(), 8, "{times}");
    assert!(
        words[2].len() == 8 && words[3] == "UTC" && words[7] == "UTC",
        "{times}"
    );
    let missing = cli(&app, &["digest", "status", "99"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("digest 99 does not exist"));
}

#[tokio::test]
async fn subscribers_export_import_and_erase_through_the_cli() {
    let app = spawn_app_with(|_| {}).await;
    app.seed_confirmed("c", 3);
    let export = stdout(&cli(
        &app,
        &["subscribers", "export", "--status", "confirmed"],
    ));
    let lines: Vec<&str> = export.lines().collect();
    assert_eq!(
        lines[0],
        "id,email,name,status,created_at,confirmed_at,unsubscribed_at"
    );
    assert_eq!(lines.len(), 4);
    assert!(lines[1].contains("c0@example.org,,confirmed"));

    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        file.path(),
        "Email,Name\nnew@example.org,New Person\nc1@example.org,\nnot-an-address,X\n",
    )
    .unwrap();
    let report = stdout(&cli(
        &app,
        &[
            "subscribers",
            "import",
            file.path().to_str().unwrap(),
            "--confirmed",
            "--consent",
            "signed the paper form at the clinic",
        ],
    ));
    assert!(
        report.contains(
            "imported 1, already on the list 1, erased earlier (not re-added) 0, invalid 1"
        ),
        "{report}"
    );
    assert_eq!(
        app.subscriber_status("new@example.org").as_deref(),
        Some("confirmed")
    );

    assert!(stdout(&cli(&app, &["subscribers", "erase", "new@example.org"])).contains("erased"));
    assert_eq!(app.subscriber_status("new@example.org"), None);
    let report = stdout(&cli(
        &app,
        &["subscribers", "import", file.path().to_str().unwrap()],
    ));
    assert!(
        report.contains("imported 0, already on the list 1, erased earlier (not re-added) 1"),
        "{report}"
    );
    let listed = stdout(&cli(
        &app,
        &["subscribers", "list", "--status", "confirmed"],
    ));
    assert!(listed.contains("c2@example.org"));
}

#[tokio::test]
async fn a_bad_setting_stops_the_binary_with_the_key_named() {
    let app = spawn_app().await;
    let output = Command::new(env!("CARGO_BIN_EXE_newsletter"))
        .arg("migrate")
        .env(
            "NEWSLETTER__DATABASE__URL",
            app.settings.database.url.expose_secret(),
        )
        .env("NEWSLETTER__SERVER__PORT", "eighty")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("server.port"), "{stderr}");

    let output = Command::new(env!("CARGO_BIN_EXE_newsletter"))
        .arg("migrate")
        .env("NEWSLETTER__SERVER__PROT", "1")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("prot"));

    let output = Command::new(env!("CARGO_BIN_EXE_newsletter"))
        .args(["--config", "/nonexistent.toml", "migrate"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&output.stderr).contains("/nonexistent.toml does not exist"));
}
