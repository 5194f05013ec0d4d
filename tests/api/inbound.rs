//! Mail that comes back, fed to `newsletter inbound process` as a mail server's pipe would:
//! real bounce, complaint and auto-reply messages (tests/fixtures/bounces, from the Sisimai
//! collection), tied to our mail by the VERP tag of the copy's return path or by the recipient
//! the message names, and what each does to the list, with its evidence in the ledger.

use diesel::prelude::*;
use newsletter::db::schema::{bounce_reports, deliveries, subscriber_events};

use crate::helpers::{TestApp, spawn_app_with};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/bounces");

/// `newsletter inbound process FILE [--envelope-to ADDRESS]`: exit code and what it said.
async fn process(app: &TestApp, file: &str, envelope_to: Option<&str>) -> (i32, String) {
    let mut args = vec![
        "inbound".to_string(),
        "process".to_string(),
        format!("{FIXTURES}/{file}"),
    ];
    if let Some(to) = envelope_to {
        args.extend(["--envelope-to".to_string(), to.to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut command = app.command(&args);
    command.env(
        "NEWSLETTER__MAIL__BOUNCE_ADDRESS",
        &app.settings.mail.bounce_address,
    );
    let (code, said) = crate::helpers::output_of(command).await;
    (code.unwrap_or(-1), said)
}

/// The `mailto:` address of a copy's List-Unsubscribe.
fn mailto_of(mail: &crate::helpers::ReceivedMail) -> String {
    let header = mail.header("List-Unsubscribe").unwrap();
    let after = header.split("<mailto:").nth(1).expect("a mailto");
    after.split(['?', '>']).next().unwrap().to_string()
}

fn ledger(app: &TestApp, email: &str) -> Vec<(String, String, Option<String>)> {
    let id = app.subscriber_id(email);
    app.query(|conn| {
        subscriber_events::table
            .filter(subscriber_events::subscriber_id.eq(id))
            .order(subscriber_events::id)
            .select((
                subscriber_events::kind,
                subscriber_events::source,
                subscriber_events::detail,
            ))
            .load(conn)
    })
}

async fn app_with_verp() -> TestApp {
    spawn_app_with(|s| s.mail.bounce_address = "bounces@news.example.org".into()).await
}

#[tokio::test]
async fn a_hard_bounce_that_names_a_subscriber_marks_them_bounced_with_the_evidence() {
    let app = spawn_app_with(|_| {}).await;
    app.seed_people(&[
        ("userunknown@bouncehammer.jp", None),
        ("reader@example.org", None),
    ]);
    let (code, said) = process(&app, "lhost-sendmail-01.eml", None).await;
    assert_eq!(code, 0, "{said}");
    assert_eq!(
        app.subscriber_status("userunknown@bouncehammer.jp")
            .as_deref(),
        Some("bounced")
    );
    assert_eq!(
        app.subscriber_status("reader@example.org").as_deref(),
        Some("confirmed")
    );
    let (kind, source, detail) = ledger(&app, "userunknown@bouncehammer.jp").pop().unwrap();
    assert_eq!((kind.as_str(), source.as_str()), ("bounced", "bounce-mail"));
    let detail = detail.unwrap();
    assert!(
        detail.contains("5.1.1") && detail.contains("User Unknown"),
        "{detail}"
    );
    assert!(
        !detail.contains("userunknown@"),
        "addresses masked: {detail}"
    );

    // The command line shows who bounced, and why.
    let listed = app
        .command(&["subscribers", "list", "--status", "bounced"])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout).to_string();
    assert!(listed.contains("userunknown@bouncehammer.jp"), "{listed}");
    assert!(
        listed.contains("bounced") && listed.contains("via bounce-mail: 5.1.1"),
        "{listed}"
    );

    // The same message again changes nothing more.
    let entries = ledger(&app, "userunknown@bouncehammer.jp").len();
    let (code, _) = process(&app, "lhost-sendmail-01.eml", None).await;
    assert_eq!(code, 0);
    assert_eq!(ledger(&app, "userunknown@bouncehammer.jp").len(), entries);
}

#[tokio::test]
async fn every_copy_has_a_tagged_return_path_and_its_bounce_finds_the_reader_whatever_it_names() {
    let app = app_with_verp().await;
    app.seed_people(&[("maria@example.org", None), ("jon@example.org", None)]);
    let token = app.staff_token();
    let digest = app.queued_digest(&token).await;
    app.wait_until_sent(&token, digest).await;
    let mail = app.smtp.wait_for("maria@example.org", 1).await.remove(0);
    let return_path = mail.mail_from.clone();
    assert!(
        return_path.starts_with("bounces+") && return_path.ends_with("@news.example.org"),
        "{return_path}"
    );
    let jon = app.smtp.wait_for("jon@example.org", 1).await.remove(0);
    assert_ne!(jon.mail_from, return_path, "each copy its own tag");
    // The one-click mailto is the copy's own unsubscribe address.
    assert!(mailto_of(&mail).starts_with("unsubscribe+"));

    // The bounce names another address (the relay rewrote it); the tag decides.
    let (code, said) = process(&app, "lhost-sendmail-01.eml", Some(&return_path)).await;
    assert_eq!(code, 0, "{said}");
    assert_eq!(
        app.subscriber_status("maria@example.org").as_deref(),
        Some("bounced")
    );
    assert_eq!(
        app.subscriber_status("jon@example.org").as_deref(),
        Some("confirmed")
    );
    let status = app.admin_json(&token, &format!("/digests/{digest}")).await;
    assert_eq!(status["bounced"], 1, "{status}");

    // A forged tag matches nobody (and the address the message names is no reader of ours).
    let forged = return_path.replace("bounces+", "bounces+9").to_string();
    let (code, said) = process(&app, "lhost-sendmail-01.eml", Some(&forged)).await;
    assert_eq!(code, 0, "{said}");
    assert!(said.contains("Unmatched"), "{said}");
    assert_eq!(
        app.subscriber_status("jon@example.org").as_deref(),
        Some("confirmed")
    );

    // Mail to the copy's unsubscribe address (RFC 2369 mailto) unsubscribes its reader.
    let jon_mailto = mailto_of(&jon);
    assert_ne!(mailto_of(&mail), jon_mailto);
    let (code, said) = process(&app, "rfc3834-01.eml", Some(&jon_mailto)).await;
    assert_eq!(code, 0, "{said}");
    assert_eq!(
        app.subscriber_status("jon@example.org").as_deref(),
        Some("unsubscribed")
    );
    let (kind, source, _) = ledger(&app, "jon@example.org").pop().unwrap();
    assert_eq!((kind.as_str(), source.as_str()), ("unsubscribed", "mailto"));
}

#[tokio::test]
async fn soft_bounces_count_and_the_third_within_thirty_days_makes_a_hard_one() {
    let app = spawn_app_with(|_| {}).await;
    assert_eq!(
        (
            app.settings.bounces.soft_limit,
            app.settings.bounces.soft_window_days
        ),
        (3, 30),
        "the defaults"
    );
    app.seed_people(&[("kijitora@example.edu", None)]);
    for _ in 0..2 {
        let (code, said) = process(&app, "lhost-exchange2007-02.eml", None).await;
        assert_eq!(code, 0, "{said}");
        assert!(said.contains("SoftCounted"), "{said}");
    }
    assert_eq!(
        app.subscriber_status("kijitora@example.edu").as_deref(),
        Some("confirmed")
    );
    // Older than the window, the first two no longer count.
    app.query(|conn| {
        diesel::update(bounce_reports::table)
            .set(
                bounce_reports::created_at
                    .eq(chrono::Utc::now().naive_utc() - chrono::Duration::days(31)),
            )
            .execute(conn)
    });
    let (_, said) = process(&app, "lhost-exchange2007-02.eml", None).await;
    assert!(said.contains("count: 1"), "{said}");
    process(&app, "lhost-exchange2007-02.eml", None).await;
    let (_, said) = process(&app, "lhost-exchange2007-02.eml", None).await;
    assert!(said.contains("Bounced"), "{said}");
    assert_eq!(
        app.subscriber_status("kijitora@example.edu").as_deref(),
        Some("bounced")
    );
    let (_, _, detail) = ledger(&app, "kijitora@example.edu").pop().unwrap();
    assert!(detail.unwrap().starts_with("3 soft bounces within 30 days"));
}

#[tokio::test]
async fn a_complaint_unsubscribes_a_refusal_about_us_leaves_the_reader_and_an_auto_reply_does_nothing()
 {
    let app = app_with_verp().await;
    app.seed_people(&[
        ("redacted@example.net", None),
        ("kijitora@example.net", None),
        ("barracuda-reader@example.org", None),
    ]);
    let token = app.staff_token();
    let digest = app.queued_digest(&token).await;
    app.wait_until_sent(&token, digest).await;

    // A feedback-loop complaint: unsubscribed, with a "complained" entry.
    let (code, said) = process(&app, "arf-01.eml", None).await;
    assert_eq!(code, 0, "{said}");
    assert_eq!(
        app.subscriber_status("redacted@example.net").as_deref(),
        Some("unsubscribed")
    );
    let (kind, _, _) = ledger(&app, "redacted@example.net").pop().unwrap();
    assert_eq!(kind, "complained");

    // An out-of-office reply: nothing changes.
    let before = ledger(&app, "kijitora@example.net").len();
    let (code, said) = process(&app, "rfc3834-01.eml", None).await;
    assert_eq!(code, 0, "{said}");
    assert_eq!(
        app.subscriber_status("kijitora@example.net").as_deref(),
        Some("confirmed")
    );
    assert_eq!(ledger(&app, "kijitora@example.net").len(), before);

    // Refused as spam, tied by the tag: the delivery failed as a sender problem, the reader
    // stays, the digest shows it.
    let copy = app
        .smtp
        .wait_for("barracuda-reader@example.org", 1)
        .await
        .remove(0);
    let (code, said) = process(&app, "lhost-barracuda-01.eml", Some(&copy.mail_from)).await;
    assert_eq!(code, 0, "{said}");
    assert!(said.contains("SenderProblem"), "{said}");
    assert_eq!(
        app.subscriber_status("barracuda-reader@example.org")
            .as_deref(),
        Some("confirmed")
    );
    let failure: (String, Option<String>) = app.query(|conn| {
        deliveries::table
            .filter(deliveries::digest_id.eq(digest))
            .filter(deliveries::status.eq("failed"))
            .select((deliveries::status, deliveries::failure))
            .first(conn)
    });
    assert_eq!(failure.1.as_deref(), Some("sender"));
    let status = app.admin_json(&token, &format!("/digests/{digest}")).await;
    assert_eq!(status["failures"]["sender"], 1, "{status}");
    assert_eq!(status["complained"], 1, "{status}");
}

#[tokio::test]
async fn a_message_that_cannot_be_read_or_a_database_out_of_reach_asks_the_mail_server_to_retry() {
    let app = spawn_app_with(|_| {}).await;
    let (code, said) = process(&app, "no-such-file.eml", None).await;
    assert_eq!(code, 75, "{said}");
    assert!(said.contains("reading the message"), "{said}");

    let mut command = app.command(&[
        "inbound",
        "process",
        &format!("{FIXTURES}/lhost-sendmail-01.eml"),
    ]);
    let mut closed = crate::helpers::ClosedPort::new();
    command.env(
        "NEWSLETTER__DATABASE__URL",
        format!("postgres://postgres@127.0.0.1:{}/none", closed.release()),
    );
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(75), "{output:?}");
}

#[tokio::test]
async fn ten_copies_of_one_complaint_processed_at_once_leave_one_ledger_entry() {
    let app = spawn_app_with(|_| {}).await;
    app.seed_people(&[("redacted@example.net", None)]);
    let raw = std::fs::read(format!("{FIXTURES}/arf-01.eml")).unwrap();
    let all = (0..10).map(|_| {
        let (db, settings, raw) = (app.db.clone(), app.settings.clone(), raw.clone());
        tokio::spawn(async move {
            newsletter::bounces::process(&db, &settings, None, &raw, None)
                .await
                .unwrap()
        })
    });
    let handled: Vec<_> = futures_util::future::join_all(all)
        .await
        .into_iter()
        .flat_map(|h| h.unwrap())
        .collect();
    let unsubscribed = handled
        .iter()
        .filter(|h| {
            matches!(
                h.applied,
                newsletter::db::bounces::Applied::Unsubscribed { .. }
            )
        })
        .count();
    assert_eq!(unsubscribed, 1, "{handled:?}");
    let complained = ledger(&app, "redacted@example.net")
        .into_iter()
        .filter(|(kind, _, _)| kind == "complained")
        .count();
    assert_eq!(complained, 1);
    let kept: i64 = app.query(|conn| bounce_reports::table.count().get_result(conn));
    assert_eq!(kept, 10, "every report is kept as evidence");
}

/// Hands `raw` to the listener at `port` for `to` in a plain SMTP dialogue; the first reply
/// that is not a success (code and words), or the 250 after the message.
async fn hand_over(port: u16, to: &str, raw: Vec<u8>) -> (u16, String) {
    let to = to.to_string();
    tokio::task::spawn_blocking(move || {
        use std::io::{BufRead, BufReader, Write};
        let stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_nodelay(true).unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut writer = stream;
        let mut reply = || -> (u16, String) {
            let mut text = String::new();
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                text.push_str(&line);
                if line.len() < 4 || line.as_bytes()[3] != b'-' {
                    return (line[..3].parse().unwrap_or(0), text);
                }
            }
        };
        reply();
        let mut body = String::from_utf8_lossy(&raw)
            .replace("\r\n", "\n")
            .replace('\n', "\r\n");
        body = body
            .split("\r\n")
            .map(|line| {
                if line.starts_with('.') {
                    format!(".{line}")
                } else {
                    line.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\r\n");
        for (command, expected) in [
            ("EHLO mx.example.jp".to_string(), 250),
            ("MAIL FROM:<mailer-daemon@mx.example.jp>".to_string(), 250),
            (format!("RCPT TO:<{to}>"), 250),
            ("DATA".to_string(), 354),
            (format!("{body}\r\n."), 250),
        ] {
            write!(writer, "{command}\r\n").unwrap();
            let (code, text) = reply();
            if code != expected {
                let _ = write!(writer, "QUIT\r\n");
                return (code, text);
            }
            if command.ends_with("\r\n.") {
                let _ = write!(writer, "QUIT\r\n");
                return (code, text);
            }
        }
        unreachable!()
    })
    .await
    .unwrap()
}

async fn app_with_listener(
    adjust: impl FnOnce(&mut newsletter::configuration::Settings),
) -> (TestApp, u16) {
    let port = crate::helpers::free_port();
    let app = spawn_app_with(move |s| {
        s.mail.bounce_address = "bounces@news.example.org".into();
        s.inbound.listen = format!("127.0.0.1:{port}");
        adjust(s);
    })
    .await;
    (app, port)
}

#[tokio::test]
async fn the_smtp_listener_takes_a_bounce_for_a_tagged_address_and_refuses_everyone_else() {
    let (app, port) = app_with_listener(|_| {}).await;
    assert_eq!(
        app.settings.inbound.max_message_bytes,
        10 * 1024 * 1024,
        "the default"
    );
    app.seed_people(&[("maria@example.org", None)]);
    let token = app.staff_token();
    let digest = app.queued_digest(&token).await;
    app.wait_until_sent(&token, digest).await;
    let copy = app.smtp.wait_for("maria@example.org", 1).await.remove(0);
    let hard = std::fs::read(format!("{FIXTURES}/lhost-sendmail-01.eml")).unwrap();

    // Nobody else's mail: 550 at RCPT, nothing stored.
    let (code, said) = hand_over(port, "postmaster@news.example.org", hard.clone()).await;
    assert_eq!(code, 550, "{said}");
    assert!(said.contains("bounces only"), "{said}");
    let forged = copy.mail_from.replace("bounces+", "bounces+7");
    assert_eq!(hand_over(port, &forged, hard.clone()).await.0, 550);

    let (code, said) = hand_over(port, &copy.mail_from, hard).await;
    assert_eq!(code, 250, "{said}");
    assert_eq!(
        app.subscriber_status("maria@example.org").as_deref(),
        Some("bounced")
    );
    let kept: i64 = app.query(|conn| bounce_reports::table.count().get_result(conn));
    assert_eq!(kept, 1);
}

#[tokio::test]
async fn the_listener_refuses_a_message_too_big_and_a_client_past_sixty_a_minute() {
    let (app, port) = app_with_listener(|s| s.inbound.max_message_bytes = 20_000).await;
    assert_eq!(app.settings.inbound.messages_per_minute, 60, "the default");
    let big = [
        b"Subject: too big\r\n\r\n".to_vec(),
        vec![b'x'; 30_000],
        b"\r\n".to_vec(),
    ]
    .concat();
    let (code, said) = hand_over(port, "bounces@news.example.org", big).await;
    assert_eq!(code, 552, "{said}");
    assert!(said.contains("too big"), "{said}");

    // An auto-reply to the bare address: read, changes nothing; the 61st in a minute is refused.
    let reply = std::fs::read(format!("{FIXTURES}/rfc3834-01.eml")).unwrap();
    for n in 2..=60 {
        let (code, said) = hand_over(port, "bounces@news.example.org", reply.clone()).await;
        assert_eq!(code, 250, "message {n}: {said}");
    }
    let (code, said) = hand_over(port, "bounces@news.example.org", reply).await;
    assert_eq!(code, 421, "{said}");
    assert!(said.contains("Too many messages"), "{said}");
}
