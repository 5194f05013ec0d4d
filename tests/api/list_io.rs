//! The list leaves and comes back as CSV: every status survives the trip, people without one
//! are asked to confirm, and a spreadsheet never runs a cell.

use std::process::Output;

use diesel::prelude::*;
use newsletter::db::schema::subscriber_events::dsl as e;

use crate::helpers::{TestApp, spawn_app, spawn_app_without_worker};

fn run(app: &TestApp, args: &[&str]) -> Output {
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

/// The export without its ids (they differ between databases), sorted by address.
fn exported(app: &TestApp) -> Vec<String> {
    let csv = stdout(&run(app, &["subscribers", "export"]));
    let mut rows: Vec<String> = csv
        .lines()
        .skip(1)
        .map(|line| line.split_once(',').unwrap().1.to_string())
        .collect();
    rows.sort();
    rows
}

#[tokio::test]
async fn an_export_imported_into_a_fresh_database_reproduces_every_status() {
    let source = spawn_app_without_worker(|_| {}).await;
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        file.path(),
        "email,name,status,created_at,confirmed_at,unsubscribed_at\n\
         ann@example.org,Ann,confirmed,2025-05-01T10:00:00+00:00,2025-05-01T10:05:00+00:00,\n\
         bo@example.org,,unsubscribed,2025-05-02T10:00:00+00:00,2025-05-02T10:05:00+00:00,2025-09-01T08:00:00+00:00\n\
         cy@example.org,,bounced,2025-05-03T10:00:00+00:00,2025-05-03T10:05:00+00:00,\n\
         di@example.org,Di,pending,2025-05-04T10:00:00+00:00,,\n",
    )
    .unwrap();
    let report = stdout(&run(
        &source,
        &["subscribers", "import", file.path().to_str().unwrap()],
    ));
    assert!(report.contains("imported 4,"), "{report}");
    let before = exported(&source);

    let copy = tempfile::NamedTempFile::new().unwrap();
    stdout(&run(
        &source,
        &[
            "subscribers",
            "export",
            "--output",
            copy.path().to_str().unwrap(),
        ],
    ));
    // A fresh database with a running worker: nobody who left is mailed; the pending person
    // gets a new link (the one they were sent belonged to the old database).
    let target = spawn_app().await;
    stdout(&run(
        &target,
        &["subscribers", "import", copy.path().to_str().unwrap()],
    ));
    assert_eq!(
        exported(&target),
        before,
        "the same list, status for status"
    );
    for status in ["confirmed", "unsubscribed", "bounced", "pending"] {
        assert_eq!(
            before
                .iter()
                .filter(|r| r.contains(&format!(",{status},")))
                .count(),
            1
        );
    }
    let link = target.smtp.wait_for("di@example.org", 1).await;
    assert!(
        link[0].subject().contains("confirm"),
        "{}",
        link[0].subject()
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    for email in ["ann@example.org", "bo@example.org", "cy@example.org"] {
        assert!(
            target.smtp.messages_to(email).is_empty(),
            "{email} was mailed"
        );
    }
}

#[tokio::test]
async fn people_without_a_status_are_asked_to_confirm_unless_staff_vouch_for_their_consent() {
    let app = spawn_app().await;
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), "Email,Name\nnew@example.org,New Person\n").unwrap();
    let report = stdout(&run(
        &app,
        &["subscribers", "import", file.path().to_str().unwrap()],
    ));
    assert!(report.contains("added pending"), "{report}");
    assert_eq!(
        app.subscriber_status("new@example.org").as_deref(),
        Some("pending")
    );
    let mail = app.smtp.wait_for("new@example.org", 1).await;
    assert!(mail[0].link("/subscriptions/confirm").contains("token="));

    // --confirmed needs the consent in words, and the ledger keeps them.
    std::fs::write(file.path(), "email\nvouched@example.org\n").unwrap();
    let path = file.path().to_str().unwrap();
    let refused = run(&app, &["subscribers", "import", path, "--confirmed"]);
    assert_eq!(refused.status.code(), Some(2), "clap refuses it");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--consent"));
    let consent = "ticked the newsletter box on the paper form, open day 2026";
    stdout(&run(
        &app,
        &[
            "subscribers",
            "import",
            path,
            "--confirmed",
            "--consent",
            consent,
        ],
    ));
    assert_eq!(
        app.subscriber_status("vouched@example.org").as_deref(),
        Some("confirmed")
    );
    let id = app.subscriber_id("vouched@example.org");
    let ledger: Vec<(String, String, Option<String>)> = app.query(move |c| {
        e::subscriber_events
            .filter(e::subscriber_id.eq(id))
            .order(e::id)
            .select((e::kind, e::source, e::detail))
            .load(c)
    });
    assert_eq!(ledger.len(), 2);
    for (kind, (event, source, detail)) in ["subscribed", "confirmed"].iter().zip(&ledger) {
        assert_eq!((event.as_str(), source.as_str()), (*kind, "import"));
        assert!(detail.as_deref().unwrap().contains(consent), "{detail:?}");
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        app.smtp.messages_to("vouched@example.org").is_empty(),
        "no opt-in mail"
    );
}

#[tokio::test]
async fn an_exported_cell_never_runs_as_a_formula_and_imports_back_as_it_was() {
    let app = spawn_app_without_worker(|_| {}).await;
    let name = "=HYPERLINK(\"http://evil.example\",\"Click\")";
    app.seed_people(&[
        ("-minus@example.org", Some(name)),
        ("plain@example.org", Some("+44 20 7946 0000")),
    ]);
    let csv = stdout(&run(&app, &["subscribers", "export"]));
    assert!(csv.contains("'-minus@example.org"), "{csv}");
    assert!(csv.contains("\"'=HYPERLINK("), "{csv}");
    assert!(csv.contains("'+44 20 7946 0000"), "{csv}");
    for line in csv.lines().skip(1) {
        for cell in line.split(',').skip(1) {
            let cell = cell.trim_start_matches('"');
            assert!(!cell.starts_with(['=', '+', '-', '@']), "{cell} in {line}");
        }
    }

    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &csv).unwrap();
    let target = spawn_app_without_worker(|_| {}).await;
    stdout(&run(
        &target,
        &["subscribers", "import", file.path().to_str().unwrap()],
    ));
    let names: Vec<(String, Option<String>)> = target.query(|c| {
        use newsletter::db::schema::subscribers::dsl as s;
        s::subscribers
            .order(s::email)
            .select((s::email, s::name))
            .load(c)
    });
    assert_eq!(
        names,
        [
            ("-minus@example.org".to_string(), Some(name.to_string())),
            (
                "plain@example.org".to_string(),
                Some("+44 20 7946 0000".to_string())
            ),
        ]
    );
}

#[tokio::test]
async fn staff_unsubscribe_and_find_a_person_from_the_command_line() {
    let app = spawn_app_without_worker(|_| {}).await;
    app.seed_confirmed("caller", 1);
    let listed = stdout(&run(
        &app,
        &["subscribers", "list", "--email", "CALLER0@example.org"],
    ));
    assert!(
        listed.contains("caller0@example.org") && listed.contains("confirmed"),
        "{listed}"
    );
    let done = stdout(&run(
        &app,
        &["subscribers", "unsubscribe", "Caller0@Example.org"],
    ));
    assert!(done.contains("unsubscribed"), "{done}");
    assert_eq!(
        app.subscriber_status("caller0@example.org").as_deref(),
        Some("unsubscribed")
    );
    let unknown = run(&app, &["subscribers", "unsubscribe", "nobody@example.org"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("not on the list"));
}
