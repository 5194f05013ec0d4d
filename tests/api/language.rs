//! The clinic's language: with `site.language = "de"` every public page and every mail readers
//! get is German (`<html lang="de">`), from `translations/de.toml`; a translator's file in
//! `templates.dir` changes words without a rebuild.

use chrono::Utc;

use crate::helpers::{TestApp, press_button, spawn_app_with};

async fn german_clinic() -> TestApp {
    spawn_app_with(|s| {
        s.site.language = "de".into();
        s.site.name = "Die Rückenklinik".into();
        s.site.url = "https://klinik.example".into();
        s.site.privacy_url = "https://klinik.example/datenschutz".into();
        s.site.timezone = "Europe/Berlin".into();
    })
    .await
}

fn has_all(what: &str, text: &str, expected: &[&str]) {
    for words in expected {
        assert!(text.contains(words), "{what} lacks {words:?}:\n{text}");
    }
}

#[tokio::test]
async fn a_german_clinic_speaks_german_on_every_page_and_in_every_mail() {
    let app = german_clinic().await;
    let (_, signup) = app.page("/subscribe").await;
    has_all(
        "the signup page",
        &signup,
        &[
            "<html lang=\"de\">",
            "<h1>Newsletter abonnieren</h1>",
            "E-Mail-Adresse",
            "(freiwillig)",
            ">Abonnieren</button>",
            "Zurück zu klinik.example",
            ">Datenschutz</a>",
        ],
    );
    let refused = app
        .post_form("/subscriptions", &[("email", "not an address")])
        .await;
    assert_eq!(refused.status().as_u16(), 422);
    has_all(
        "the refused form",
        &refused.text().await.unwrap(),
        &["Bitte geben Sie eine gültige E-Mail-Adresse ein"],
    );
    let (_, thanks) = app.page("/subscribe/thanks").await;
    has_all(
        "the thanks page",
        &thanks,
        &["Bitte sehen Sie in Ihr Postfach"],
    );

    // The confirmation mail, the page with its button, and the welcome mail.
    app.post_form(
        "/subscriptions",
        &[("email", "lena@example.org"), ("name", "Lena")],
    )
    .await;
    let confirmation = app.smtp.wait_for("lena@example.org", 1).await.remove(0);
    assert_eq!(
        confirmation.subject(),
        "Bitte bestätigen Sie Ihr Abonnement von Die Rückenklinik"
    );
    has_all(
        "the confirmation mail",
        &confirmation.text(),
        &[
            "Hallo Lena,",
            "Der Link gilt 48 Stunden lang.",
            "ignorieren Sie diese Mail",
            "Wie wir mit Ihren Daten umgehen: https://klinik.example/datenschutz",
        ],
    );
    has_all(
        "the confirmation mail's HTML",
        &confirmation.html(),
        &["<html lang=\"de\">", "Ja, ich möchte ihn abonnieren"],
    );
    let link = confirmation.link("/subscriptions/confirm");
    let (_, confirm) = app.page(&link).await;
    has_all(
        "the confirm page",
        &confirm,
        &[
            "<strong>le***@example.org</strong> für unseren Newsletter",
            "Abonnement bestätigen</button>",
        ],
    );
    let confirmed = press_button(&app.client, &link, "Abonnement bestätigen").await;
    has_all(
        "the confirmed page",
        &confirmed.text().await.unwrap(),
        &[
            "Sie haben den Newsletter abonniert",
            "Danke für Ihre Bestätigung",
        ],
    );
    let welcome = app.smtp.wait_for("lena@example.org", 2).await.remove(1);
    assert_eq!(
        welcome.subject(),
        "Willkommen beim Newsletter von Die Rückenklinik"
    );
    has_all(
        "the welcome mail",
        &welcome.text(),
        &["Jederzeit abmelden: http"],
    );
    has_all(
        "the welcome mail's HTML",
        &welcome.html(),
        &["Abmelden</a> jederzeit mit einem Klick."],
    );

    // A digest: greeting, dates, links, footer; and its archive page.
    let token = app.staff_token();
    let id = app.queued_digest(&token).await;
    app.wait_until_sent(&token, id).await;
    let digest = app.smtp.wait_for("lena@example.org", 3).await.remove(2);
    has_all(
        "the digest",
        &digest.text(),
        &[
            "Im Browser ansehen: http",
            "Hallo Lena,",
            "(23. November 2026)",
            "Sie bekommen diese Mail, weil Sie den Newsletter von Die Rückenklinik auf https://klinik.example abonniert",
            "Mit einem Klick abmelden: http",
        ],
    );
    has_all(
        "the digest's HTML",
        &digest.html(),
        &[
            "„Prolotherapy after failed back surgery“ lesen",
            "Abmelden</a> mit einem Klick.",
            "<html lang=\"de\">",
        ],
    );
    let berlin: chrono_tz::Tz = "Europe/Berlin".parse().unwrap();
    let today = Utc::now()
        .with_timezone(&berlin)
        .date_naive()
        .format_localized("%-d. %B %Y", chrono::Locale::de_DE)
        .to_string();
    let (_, archive) = app.page("/archive").await;
    has_all(
        "the archive",
        &archive,
        &[
            "<h1>Alle Ausgaben</h1>",
            "Die nächste Ausgabe per E-Mail bekommen",
        ],
    );
    let (_, issue) = app.page(&digest.link("/archive/")).await;
    has_all(
        "the archived digest",
        &issue,
        &[
            &format!("Verschickt am {today}"),
            "← Alle Ausgaben",
            "23. November 2026",
        ],
    );

    // Unsubscribing, a preview's link, and what goes wrong.
    let unsubscribe = digest.link("/unsubscribe");
    let (_, question) = app.page(&unsubscribe).await;
    has_all(
        "the unsubscribe page",
        &question,
        &["nicht mehr bekommen?", ">Abmelden</button>"],
    );
    let done = press_button(&app.client, &unsubscribe, "Abmelden").await;
    has_all(
        "the unsubscribed page",
        &done.text().await.unwrap(),
        &["Sie sind abgemeldet"],
    );
    let (status, missing) = app.page("/gibt/es/nicht").await;
    assert_eq!(status, 404);
    has_all(
        "the 404 page",
        &missing,
        &["Seite nicht gefunden", "Zur Anmeldeseite"],
    );
    let (_, preview) = app.page("/unsubscribe?preview=true").await;
    has_all(
        "a preview's unsubscribe page",
        &preview,
        &["Das war eine Vorschau"],
    );
}

#[tokio::test]
async fn a_translators_file_in_templates_dir_changes_words_and_a_typo_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let translations = dir.path().join("translations");
    std::fs::create_dir(&translations).unwrap();
    std::fs::write(
        translations.join("de.toml"),
        "[subscribe]\nbutton = \"Jetzt abonnieren\"\n",
    )
    .unwrap();
    let templates_dir = dir.path().to_path_buf();
    let app = spawn_app_with(move |s| {
        s.site.language = "de".into();
        s.templates.dir = templates_dir.display().to_string();
    })
    .await;
    let (_, signup) = app.page("/subscribe").await;
    has_all(
        "the signup page",
        &signup,
        &[">Jetzt abonnieren</button>", "E-Mail-Adresse"],
    );

    std::fs::write(
        translations.join("de.toml"),
        "[subscribe]\nbuton = \"Jetzt\"\n",
    )
    .unwrap();
    let checked = app
        .command(&["templates", "check"])
        .env("NEWSLETTER__SITE__LANGUAGE", "de")
        .env("NEWSLETTER__TEMPLATES__DIR", dir.path())
        .output()
        .unwrap();
    assert!(!checked.status.success());
    let said = String::from_utf8_lossy(&checked.stderr);
    assert!(
        said.contains("de.toml") && said.contains("subscribe.buton"),
        "{said}"
    );
}
