//! Templates changed without rebuilding: `newsletter templates export DIR` writes the built-ins,
//! `templates.dir = DIR` makes the files there replace them one by one, and a broken one stops
//! start-up naming its file and line, never a send.

use std::path::Path;

use newsletter::startup::Application;

use crate::helpers::{spawn_app_with, test_settings};

fn export(app: &crate::helpers::TestApp, dir: &Path) -> String {
    let out = app
        .command(&["templates", "export", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn exported_templates_replace_the_built_ins_file_by_file() {
    let dir = tempfile::tempdir().unwrap();
    let templates = dir.path().join("clinic-templates");
    {
        let plain = spawn_app_with(|_| {}).await;
        let said = export(&plain, &templates);
        assert!(said.contains("template(s) written"), "{said}");
        for file in [
            "email_templates/base.html",
            "email_templates/digest/body.html",
            "email_templates/confirmation/subject.txt",
            "templates/layout.html",
            "templates/subscribe.html",
            "templates/admin/dashboard.html",
        ] {
            assert!(templates.join(file).is_file(), "{file}");
        }
        // A second export keeps what is there.
        std::fs::write(templates.join("templates/subscribe.html"), "mine").unwrap();
        let again = export(&plain, &templates);
        assert!(
            again.contains("0 template(s) written") && again.contains("kept"),
            "{again}"
        );
        assert_eq!(
            std::fs::read_to_string(templates.join("templates/subscribe.html")).unwrap(),
            "mine"
        );
    }

    // The clinic changes two files and deletes the rest: those come from the binary.
    let subscribe = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("templates/subscribe.html"),
    )
    .unwrap();
    for entry in walk(&templates) {
        std::fs::remove_file(entry).unwrap();
    }
    std::fs::create_dir_all(templates.join("templates")).unwrap();
    std::fs::create_dir_all(templates.join("email_templates/confirmation")).unwrap();
    std::fs::write(
        templates.join("templates/subscribe.html"),
        subscribe.replace(
            "{% block content %}",
            "{% block content %}<p>Research from our clinic, once a month.</p>",
        ),
    )
    .unwrap();
    std::fs::write(
        templates.join("email_templates/confirmation/subject.txt"),
        "One click to confirm: {{ site_name }}",
    )
    .unwrap();
    let dir_setting = templates.to_str().unwrap().to_string();
    let app = spawn_app_with(|s| s.templates.dir = dir_setting).await;
    let page = app.get("/subscribe").await.text().await.unwrap();
    assert!(
        page.contains("Research from our clinic, once a month."),
        "{page}"
    );
    app.signup("reader@example.org").await;
    let mail = app.smtp.wait_for("reader@example.org", 1).await.remove(0);
    assert_eq!(mail.subject(), "One click to confirm: Our newsletter");
    assert!(
        mail.html().contains("Confirm"),
        "the body is still the built-in one"
    );
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[tokio::test]
async fn a_broken_template_stops_start_up_naming_its_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let templates = dir.path().join("t");
    std::fs::create_dir_all(templates.join("email_templates/digest")).unwrap();
    let body = templates.join("email_templates/digest/body.html");

    // A syntax error on line 3.
    std::fs::write(&body, "{% extends \"base.html\" %}\n{% block content %}\n<h1>{{ subject | }}</h1>\n{% endblock %}\n").unwrap();
    let mut settings = test_settings(1, dir.path());
    settings.templates.dir = templates.to_str().unwrap().into();
    let start_up_error = || {
        let failed = Application::build(settings.clone(), false).err();
        format!("{:#}", failed.expect("start-up fails"))
    };
    let error = start_up_error();
    assert!(error.contains(&body.display().to_string()), "{error}");
    assert!(error.contains("line 3"), "{error}");

    // A value no digest has: found at start-up too, not at the first send.
    std::fs::write(
        &body,
        "{% extends \"base.html\" %}\n{% block content %}{{ readers_shoe_size }}{% endblock %}\n",
    )
    .unwrap();
    let error = start_up_error();
    assert!(error.contains(&body.display().to_string()), "{error}");
    assert!(error.contains("undefined"), "{error}");

    // `templates check` says the same without starting, and a folder that is not there is named.
    let app = spawn_app_with(|_| {}).await;
    let out = app
        .command(&["templates", "check"])
        .env("NEWSLETTER__TEMPLATES__DIR", &templates)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("readers_shoe_size") || said.contains("undefined"),
        "{said}"
    );
    let out = app
        .command(&["templates", "check"])
        .env("NEWSLETTER__TEMPLATES__DIR", dir.path().join("nope"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("templates export"));
}
