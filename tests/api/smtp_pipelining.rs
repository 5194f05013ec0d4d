//! Against a server that offers PIPELINING (RFC 2920), as relays do, the mailer writes MAIL
//! FROM, RCPT TO and DATA together and the message with its closing dot in one write. The test
//! server here is Postfix's smtp-sink, a real pipelining server (the tests' own SMTP server
//! does not offer PIPELINING, so every other test checks the command-by-command path). Each
//! refusal must still be read at its stage.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use lettre::address::Envelope;
use newsletter::domain::SmtpStage;
use newsletter::email::{MailSession, Mailer};

use crate::helpers::{free_port, spawn_app_with};

const SMTP_SINK: &str = "/usr/sbin/smtp-sink";

/// Postfix's smtp-sink on a free port, appending every message it takes to `dump`, with its
/// extra options (`-Q RCPT` answers RCPT TO with 421 and hangs up, `-q DATA` just hangs up).
struct Sink {
    child: Child,
    port: u16,
    dump: PathBuf,
}

impl Sink {
    async fn start(dir: &Path, options: &[&str]) -> Sink {
        assert!(
            Path::new(SMTP_SINK).exists(),
            "{SMTP_SINK} is missing: install Debian's postfix package (see the README)"
        );
        let port = free_port();
        let dump = dir.join(format!("sink-{port}.mbox"));
        let mut command = Command::new(SMTP_SINK);
        if is_root() {
            // smtp-sink refuses to keep root's privileges.
            command.args(["-u", "nobody"]);
            std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o777))
                .unwrap();
        }
        let child = command
            .args(options)
            .arg("-D")
            .arg(&dump)
            .arg(format!("127.0.0.1:{port}"))
            .arg("64")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Sink { child, port, dump }
    }

    fn dumped(&self) -> String {
        std::fs::read_to_string(&self.dump).unwrap_or_default()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.starts_with(b"0\n"))
}

fn session_to(port: u16) -> MailSession {
    let mut settings = newsletter::configuration::Settings::load(None).unwrap();
    settings.mail.transport = newsletter::configuration::Transport::Smtp;
    settings.mail.smtp.host = "127.0.0.1".into();
    settings.mail.smtp.port = port;
    settings.mail.smtp.tls = newsletter::configuration::SmtpTls::None;
    settings.mail.smtp.timeout_seconds = 5;
    Mailer::new(&settings.mail).unwrap().session()
}

fn envelope(to: &str) -> Envelope {
    Envelope::new(
        Some("news@clinic.example".parse().unwrap()),
        vec![to.parse().unwrap()],
    )
    .unwrap()
}

/// A message with a line that starts with a dot, which must arrive as it was written.
const MESSAGE: &[u8] = b"Subject: Latest research\r\n\r\nProlotherapy after failed back surgery\r\n.starts with a dot\r\nend\r\n";

#[tokio::test]
async fn mail_goes_pipelined_to_a_server_that_offers_it_and_arrives_whole() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(dir.path(), &[]).await;
    let mut session = session_to(sink.port);

    for i in 0..3 {
        session
            .send(&envelope(&format!("reader{i}@example.org")), MESSAGE, "m")
            .await
            .unwrap();
    }
    assert_eq!(
        session.pipelining(),
        Some(true),
        "smtp-sink offers PIPELINING"
    );
    session.close().await;

    let dumped = sink.dumped();
    assert_eq!(dumped.matches("Subject: Latest research").count(), 3);
    assert!(dumped.contains("\n.starts with a dot"), "{dumped}");
    assert!(!dumped.contains("..starts"), "dots are unstuffed: {dumped}");
}

#[tokio::test]
async fn a_pipelined_refusal_is_read_at_its_stage() {
    // smtp-sink keeps PIPELINING with -Q (answer 421 and hang up at a command); its options
    // that refuse and stay (-f, -r) turn PIPELINING off, and that path is the one of
    // smtp_faults.rs.
    let dir = tempfile::tempdir().unwrap();
    for (command, stage) in [
        ("MAIL", SmtpStage::MailFrom),
        ("RCPT", SmtpStage::RcptTo),
        ("DATA", SmtpStage::Data),
    ] {
        let sink = Sink::start(dir.path(), &["-Q", command]).await;
        let mut session = session_to(sink.port);
        // Twice: the second mail opens a new connection and meets the same answer.
        for attempt in 0..2 {
            let error = session
                .send(&envelope("reader@example.org"), MESSAGE, "m")
                .await
                .unwrap_err();
            assert_eq!(
                error.stage, stage,
                "{command}, attempt {attempt}: {error:?}"
            );
            assert_eq!(error.code, Some(421), "{command}: {error:?}");
            assert!(!error.permanent, "{command}: {error:?}");
            assert_eq!(
                session.pipelining(),
                None,
                "the closed connection is dropped"
            );
        }
        assert!(sink.dumped().is_empty(), "{command}: nothing was taken");
    }
}

#[tokio::test]
async fn a_pipelining_server_that_hangs_up_at_data_gets_the_mail_again_on_a_new_connection() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(dir.path(), &["-q", "DATA"]).await;
    let mut session = session_to(sink.port);

    let error = session
        .send(&envelope("reader@example.org"), MESSAGE, "m")
        .await
        .unwrap_err();
    assert!(
        !error.permanent,
        "a hang-up is worth another try: {error:?}"
    );
    assert_eq!(
        session.pipelining(),
        None,
        "the broken connection is dropped"
    );
    let again = session
        .send(&envelope("reader@example.org"), MESSAGE, "m")
        .await
        .unwrap_err();
    assert!(!again.permanent, "{again:?}");
}

#[tokio::test]
async fn a_signup_through_a_pipelining_relay_gets_a_confirmation_whose_link_works() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(dir.path(), &[]).await;
    let port = sink.port;
    let app = spawn_app_with(move |s| s.mail.smtp.port = port).await;

    assert_eq!(app.signup("maria@example.org").await.status().as_u16(), 202);
    let mut link = None;
    for _ in 0..250 {
        link = confirmation_link(&sink.dumped());
        if link.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let link = link.unwrap_or_else(|| panic!("no confirmation link in:\n{}", sink.dumped()));
    let response = app.press_confirm(&link).await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        app.subscriber_status("maria@example.org").as_deref(),
        Some("confirmed")
    );
}

/// The confirmation link in the text part of a message smtp-sink dumped (each message follows
/// its `X-Client-Addr` line).
fn confirmation_link(dumped: &str) -> Option<String> {
    dumped
        .split("X-Client-Addr:")
        .filter_map(|raw| mail_parser::MessageParser::default().parse(raw.as_bytes()))
        .filter_map(|mail| mail.body_text(0).map(|text| text.into_owned()))
        .find_map(|text| {
            text.split_whitespace()
                .find(|w| w.starts_with("http") && w.contains("/subscriptions/confirm?token="))
                .map(str::to_string)
        })
}
