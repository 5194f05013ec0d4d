//! The test world: the real application on a free port, a real SQLite file or a fresh
//! PostgreSQL database (when `NEWSLETTER_TEST_DATABASE_URL` is set), and a real SMTP server
//! (mailin-embedded) that keeps every message it accepts.

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use mailin_embedded::response::{OK, START_DATA};
use mailin_embedded::{Handler, Response, Server, SslConfig};
use newsletter::configuration::{Settings, SmtpTls, Transport};
use newsletter::db::{Db, DbConnection};
use newsletter::startup::Application;
use rand::Rng;

/// A message as it crossed SMTP.
#[derive(Debug, Clone)]
pub struct ReceivedMail {
    /// The envelope sender (MAIL FROM), the return path bounces go to.
    pub mail_from: String,
    pub rcpts: Vec<String>,
    pub raw: Vec<u8>,
}

impl ReceivedMail {
    fn parsed(&self) -> mail_parser::Message<'_> {
        mail_parser::MessageParser::default()
            .parse(&self.raw)
            .expect("a parsable message")
    }

    pub fn subject(&self) -> String {
        self.parsed().subject().unwrap_or_default().to_string()
    }

    pub fn text(&self) -> String {
        self.parsed()
            .body_text(0)
            .map(|t| t.to_string())
            .unwrap_or_default()
    }

    pub fn html(&self) -> String {
        self.parsed()
            .body_html(0)
            .map(|t| t.to_string())
            .unwrap_or_default()
    }

    /// A header's raw value (unfolded, trimmed), if present.
    pub fn header(&self, name: &str) -> Option<String> {
        let text = String::from_utf8_lossy(&self.raw);
        let head = text
            .split("\r\n\r\n")
            .next()
            .unwrap_or_default()
            .replace("\r\n ", " ");
        head.lines()
            .find(|l| {
                l.to_ascii_lowercase()
                    .starts_with(&format!("{}:", name.to_ascii_lowercase()))
            })
            .map(|l| l[name.len() + 1..].trim().to_string())
    }

    pub fn content_types(&self) -> Vec<String> {
        let text = String::from_utf8_lossy(&self.raw).to_ascii_lowercase();
        ["multipart/alternative", "text/plain", "text/html"]
            .into_iter()
            .filter(|t| text.contains(&format!("content-type: {t}")))
            .map(String::from)
            .collect()
    }

    /// The first link in the text part that contains `path`.
    pub fn link(&self, path: &str) -> String {
        self.text()
            .split_whitespace()
            .find(|w| w.starts_with("http") && w.contains(path))
            .unwrap_or_else(|| panic!("no {path} link in:\n{}", self.text()))
            .to_string()
    }
}

/// Opens `url`, finds the form holding the button labelled `button` and submits it (empty).
/// Panics, with the page, when the page has no such button.
pub async fn press_button(client: &reqwest::Client, url: &str, button: &str) -> reqwest::Response {
    let page = client.get(url).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200, "{url}");
    let html = page.text().await.unwrap();
    let action =
        form_action(&html, button).unwrap_or_else(|| panic!("no {button:?} button in:\n{html}"));
    client
        .post(action)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("")
        .send()
        .await
        .unwrap()
}

/// The action of the POST form that holds the button labelled `button`, unescaped.
pub fn form_action(html: &str, button: &str) -> Option<String> {
    let at = html.find(&format!(">{button}</button>"))?;
    let form = html[..at].rfind("<form ")?;
    let tag = &html[form..html[form..].find('>')? + form];
    assert!(tag.contains("method=\"post\""), "{tag}");
    let action = tag.split("action=\"").nth(1)?.split('"').next()?;
    Some(
        action
            .replace("&#x2f;", "/")
            .replace("&#x3d;", "=")
            .replace("&amp;", "&"),
    )
}

/// What the SMTP server answers to RCPT TO for an address: a fixed reply, or a reply for the
/// first `times` tries and OK after that.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub code: u16,
    pub message: String,
    pub times: Option<usize>,
}

#[derive(Clone, Default)]
struct SinkState {
    messages: Arc<Mutex<Vec<ReceivedMail>>>,
    refusals: Arc<Mutex<HashMap<String, Refusal>>>,
    /// Answers that replace the OK at MAIL FROM, at RCPT TO for everyone, and after the message.
    at_mail: Arc<Mutex<Option<(u16, String)>>>,
    at_every_rcpt: Arc<Mutex<Option<(u16, String)>>>,
    at_data_end: Arc<Mutex<Option<(u16, String)>>>,
    /// How long the server thinks before it accepts a message.
    delay: Arc<Mutex<Duration>>,
    /// Domains that refuse every so many of their recipients, by lowercase name.
    domain_refusals: Arc<Mutex<HashMap<String, DomainRefusal>>>,
    /// Every RCPT TO: the address, when, and whether it was refused.
    rcpt_log: Arc<Mutex<Vec<(String, Instant, bool)>>>,
}

/// A receiving domain that answers `code` to every `every`-th of its recipients, starting with
/// the first (a domain that rate-limits us).
#[derive(Debug, Clone)]
struct DomainRefusal {
    code: u16,
    message: String,
    every: usize,
    seen: usize,
}

#[derive(Clone)]
struct SinkHandler {
    state: SinkState,
    mail_from: String,
    rcpts: Vec<String>,
    data: Vec<u8>,
}

impl Handler for SinkHandler {
    fn mail(&mut self, _ip: std::net::IpAddr, _domain: &str, from: &str) -> Response {
        self.rcpts.clear();
        self.mail_from = from.to_string();
        match self.state.at_mail.lock().unwrap().clone() {
            Some((code, message)) => Response::custom(code, message),
            None => OK,
        }
    }

    fn rcpt(&mut self, to: &str) -> Response {
        let response = self.answer_rcpt(to);
        let refused = response.code >= 400;
        let entry = (to.to_lowercase(), Instant::now(), refused);
        self.state.rcpt_log.lock().unwrap().push(entry);
        response
    }

    fn data_start(
        &mut self,
        _domain: &str,
        _from: &str,
        _is8bit: bool,
        _to: &[String],
    ) -> Response {
        self.data.clear();
        START_DATA
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let delay = *self.state.delay.lock().unwrap();
        std::thread::sleep(delay);
        if let Some((code, message)) = self.state.at_data_end.lock().unwrap().clone() {
            return Response::custom(code, message);
        }
        let mail = ReceivedMail {
            mail_from: self.mail_from.clone(),
            rcpts: self.rcpts.clone(),
            raw: std::mem::take(&mut self.data),
        };
        self.state.messages.lock().unwrap().push(mail);
        OK
    }
}

impl SinkHandler {
    fn answer_rcpt(&mut self, to: &str) -> Response {
        if let Some((code, message)) = self.state.at_every_rcpt.lock().unwrap().clone() {
            return Response::custom(code, message);
        }
        let domain = to.rsplit_once('@').map(|(_, d)| d.to_lowercase());
        if let Some(refusal) = domain
            .and_then(|d| {
                self.state
                    .domain_refusals
                    .lock()
                    .unwrap()
                    .get_mut(&d)
                    .map(|r| {
                        r.seen += 1;
                        ((r.seen - 1) % r.every == 0).then(|| (r.code, r.message.clone()))
                    })
            })
            .flatten()
        {
            return Response::custom(refusal.0, refusal.1);
        }
        let mut refusals = self.state.refusals.lock().unwrap();
        if let Some(refusal) = refusals.get_mut(&to.to_lowercase()) {
            let refuse = match &mut refusal.times {
                None => true,
                Some(0) => false,
                Some(n) => {
                    *n -= 1;
                    true
                }
            };
            if refuse {
                return Response::custom(refusal.code, refusal.message.clone());
            }
        }
        self.rcpts.push(to.to_string());
        OK
    }
}

/// A real SMTP server on loopback, run by mailin-embedded in its own threads.
#[derive(Clone)]
pub struct TestSmtp {
    pub port: u16,
    state: SinkState,
}

impl TestSmtp {
    pub fn start() -> TestSmtp {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        TestSmtp::serve(listener)
    }

    /// Starts on a port chosen earlier (for "the server comes up later").
    pub fn start_on(port: u16) -> TestSmtp {
        TestSmtp::serve(TcpListener::bind(("127.0.0.1", port)).unwrap())
    }

    fn serve(listener: TcpListener) -> TestSmtp {
        let port = listener.local_addr().unwrap().port();
        let state = SinkState::default();
        let handler = SinkHandler {
            state: state.clone(),
            mail_from: String::new(),
            rcpts: Vec::new(),
            data: Vec::new(),
        };
        let mut server = Server::new(handler);
        server
            .with_name("sink.test")
            .with_ssl(SslConfig::None)
            .unwrap()
            .with_num_threads(16)
            .with_tcp_listener(listener);
        std::thread::spawn(move || {
            let _ = server.serve();
        });
        TestSmtp { port, state }
    }

    pub fn refuse(&self, rcpt: &str, code: u16, message: &str, times: Option<usize>) {
        self.state.refusals.lock().unwrap().insert(
            rcpt.to_lowercase(),
            Refusal {
                code,
                message: message.into(),
                times,
            },
        );
    }

    /// Answers MAIL FROM with this reply (`None`: OK again).
    pub fn answer_mail_from(&self, reply: Option<(u16, &str)>) {
        *self.state.at_mail.lock().unwrap() = reply.map(|(c, m)| (c, m.to_string()));
    }

    /// Answers every RCPT TO with this reply (`None`: as usual again).
    pub fn answer_every_rcpt(&self, reply: Option<(u16, &str)>) {
        *self.state.at_every_rcpt.lock().unwrap() = reply.map(|(c, m)| (c, m.to_string()));
    }

    /// Answers the end of every message with this reply instead of accepting it.
    pub fn answer_data_end(&self, reply: Option<(u16, &str)>) {
        *self.state.at_data_end.lock().unwrap() = reply.map(|(c, m)| (c, m.to_string()));
    }

    /// Answers `code` to every `every`-th recipient at `domain`, starting with the first.
    pub fn refuse_every_nth_at(&self, domain: &str, every: usize, code: u16, message: &str) {
        self.state.domain_refusals.lock().unwrap().insert(
            domain.to_lowercase(),
            DomainRefusal {
                code,
                message: message.into(),
                every: every.max(1),
                seen: 0,
            },
        );
    }

    /// Every RCPT TO at `domain` so far: the address, when, and whether it was refused.
    pub fn rcpts_at(&self, domain: &str) -> Vec<(String, Instant, bool)> {
        let suffix = format!("@{}", domain.to_lowercase());
        let log = self.state.rcpt_log.lock().unwrap();
        log.iter()
            .filter(|(to, ..)| to.ends_with(&suffix))
            .cloned()
            .collect()
    }

    /// Takes this long over each message before accepting it (a slow relay).
    pub fn take_time(&self, per_message: Duration) {
        *self.state.delay.lock().unwrap() = per_message;
    }

    pub fn messages_to(&self, rcpt: &str) -> Vec<ReceivedMail> {
        let rcpt = rcpt.to_lowercase();
        self.state
            .messages
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m.rcpts.iter().any(|r| r.to_lowercase() == rcpt))
            .cloned()
            .collect()
    }

    pub fn all_messages(&self) -> Vec<ReceivedMail> {
        self.state.messages.lock().unwrap().clone()
    }

    /// Waits until `count` messages to `rcpt` arrived; returns them (fewer on timeout).
    pub async fn wait_for(&self, rcpt: &str, count: usize) -> Vec<ReceivedMail> {
        self.wait_for_within(rcpt, count, Duration::from_secs(20))
            .await
    }

    pub async fn wait_for_within(
        &self,
        rcpt: &str,
        count: usize,
        timeout: Duration,
    ) -> Vec<ReceivedMail> {
        let end = Instant::now() + timeout;
        loop {
            let got = self.messages_to(rcpt);
            if got.len() >= count || Instant::now() > end {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A loopback port where connecting is refused, held until dropped: the socket is bound but
/// never listens, so no other test can take the port meanwhile (as a port found free and
/// released could be).
pub struct ClosedPort {
    socket: Option<tokio::net::TcpSocket>,
    pub port: u16,
}

impl ClosedPort {
    pub fn new() -> Self {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let port = socket.local_addr().unwrap().port();
        Self {
            socket: Some(socket),
            port,
        }
    }

    /// Frees the port for a server that is about to start on it.
    pub fn release(&mut self) -> u16 {
        self.socket.take();
        self.port
    }
}

pub struct TestApp {
    pub address: String,
    pub db: Db,
    pub smtp: TestSmtp,
    pub client: reqwest::Client,
    pub settings: Settings,
    server: actix_web::dev::ServerHandle,
    service: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Drop for TestApp {
    /// Stops the service and waits for its thread: its pool must be closed before the process
    /// exits (libpq's TLS teardown at exit crashes under live connections), and a long suite
    /// must not run PostgreSQL out of connections.
    fn drop(&mut self) {
        drop(self.server.stop(false));
        if let Some(service) = self.service.take() {
            let _ = service.join();
        }
    }
}

/// Settings for a test: a fresh database, mail to `smtp_port`, quick retries.
pub fn test_settings(smtp_port: u16, dir: &std::path::Path) -> Settings {
    let mut settings = Settings::load(None).expect("the default configuration loads");
    let port = free_port();
    settings.server.port = port;
    settings.server.base_url = format!("http://127.0.0.1:{port}");
    settings.database.url = fresh_database_url(dir).into();
    settings.database.max_connections = 4;
    settings.mail.transport = Transport::Smtp;
    settings.mail.smtp.host = "127.0.0.1".into();
    settings.mail.smtp.port = smtp_port;
    settings.mail.smtp.tls = SmtpTls::None;
    settings.mail.smtp.timeout_seconds = 5;
    settings.mail.outbox.dir = dir.join("outbox");
    settings.delivery.concurrency = 2;
    settings.delivery.retry_base_seconds = 1;
    settings.delivery.poll_interval_ms = 50;
    settings.signup.rate_limit_per_minute = 1000;
    settings.site.postal_address = "1 Example Street, Springfield".into();
    // The tests serve their feeds from loopback.
    settings.feeds.allow_private_networks = true;
    settings
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts the application (HTTP + worker) with settings changed by `adjust`.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_app_inner(adjust, true).await
}

/// Starts HTTP only: the test runs workers itself with [`TestApp::worker`].
pub async fn spawn_app_without_worker(adjust: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_app_inner(adjust, false).await
}

async fn spawn_app_inner(adjust: impl FnOnce(&mut Settings), with_worker: bool) -> TestApp {
    let smtp = TestSmtp::start();
    let dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings(smtp.port, dir.path());
    adjust(&mut settings);
    // The service runs on its own thread and runtime, as in production, so that stopping it
    // (when the TestApp is dropped) really ends its threads and closes its connections.
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let service_settings = settings.clone();
    let service = std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let application =
                Application::build(service_settings, with_worker).expect("the application builds");
            let ready = (
                application.port(),
                application.db().clone(),
                application.server_handle(),
            );
            ready_tx.send(ready).unwrap();
            let _ = application.run_until_stopped().await;
        })
    });
    let (port, db, server) = ready_rx.recv().expect("the application starts");
    let address = format!("http://127.0.0.1:{port}");
    newsletter::install_crypto_provider();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    TestApp {
        address,
        db,
        smtp,
        client,
        settings,
        server,
        service: Some(service),
        _dir: dir,
    }
}

/// A `newsletter serve` process of a test.
pub struct ServiceProcess {
    child: std::process::Child,
    pub base: String,
    reader: std::thread::JoinHandle<String>,
}

impl ServiceProcess {
    /// Kills the service and returns its log.
    pub fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.reader.join().unwrap()
    }
}

/// A worker the test started, and how to stop it.
pub struct RunningWorker {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl RunningWorker {
    /// Asks it to stop; it finishes the mail it holds first.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        self.task.await.unwrap().unwrap();
    }

    /// Kills it mid-send, as a crash would: claimed rows stay leased.
    pub fn kill(self) {
        self.task.abort();
    }
}

impl TestApp {
    /// Starts a delivery worker on this app's database and SMTP server.
    pub fn worker(&self, adjust: impl FnOnce(&mut Settings)) -> RunningWorker {
        let mut settings = self.settings.clone();
        adjust(&mut settings);
        let parts = newsletter::startup::build_parts(&settings).unwrap();
        let worker = newsletter::delivery::DbWorker::from_parts(
            &parts,
            &settings,
            Arc::default(),
            Default::default(),
            None,
        );
        let (stop, stopped) = tokio::sync::watch::channel(false);
        RunningWorker {
            stop,
            task: tokio::spawn(worker.run_until_stopped(stopped)),
        }
    }

    /// A new staff token.
    pub fn staff_token(&self) -> String {
        let mut conn = self.db.get().unwrap();
        let name = format!("staff-{}", rand::rng().random::<u32>());
        newsletter::db::staff_tokens::create_staff_token(&mut conn, &name)
            .unwrap()
            .as_str()
            .to_string()
    }

    pub async fn admin_post(
        &self,
        token: &str,
        path: &str,
        body: serde_json::Value,
    ) -> reqwest::Response {
        self.client
            .post(self.url(&format!("/admin/api{path}")))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn admin_get(&self, token: &str, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(&format!("/admin/api{path}")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// A staff API GET that must answer 200, as JSON.
    pub async fn admin_json(&self, token: &str, path: &str) -> serde_json::Value {
        let response = self.admin_get(token, path).await;
        assert_eq!(response.status().as_u16(), 200, "GET /admin/api{path}");
        response.json().await.unwrap()
    }

    pub async fn admin_delete(&self, token: &str, path: &str) -> reqwest::Response {
        self.client
            .delete(self.url(&format!("/admin/api{path}")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// `n` confirmed subscribers added straight to the database (as an import would).
    pub fn seed_confirmed(&self, prefix: &str, n: usize) -> Vec<String> {
        let emails: Vec<String> = (0..n).map(|i| format!("{prefix}{i}@example.org")).collect();
        let people: Vec<(&str, Option<&str>)> = emails.iter().map(|e| (e.as_str(), None)).collect();
        self.seed_people(&people);
        emails
    }

    /// Confirmed subscribers (address, name) added as an import with consent would add them.
    pub fn seed_people(&self, people: &[(&str, Option<&str>)]) {
        use newsletter::db::subscribers::{ImportedPerson, WithoutStatus, import_subscribers};
        use newsletter::domain::{SubscriberEmail, SubscriberName};
        let people: Vec<ImportedPerson> = people
            .iter()
            .map(|(email, name)| {
                ImportedPerson::new(
                    SubscriberEmail::parse(email).unwrap(),
                    SubscriberName::parse(*name).unwrap(),
                )
            })
            .collect();
        let consent = WithoutStatus::Confirmed {
            consent: "seeded by the test".into(),
        };
        let mut conn = self.db.get().unwrap();
        let report = import_subscribers(&mut conn, &people, &consent, "test").unwrap();
        assert_eq!(report.imported, people.len(), "{report:?}");
    }

    /// Imports the test feed and creates a "Latest research" draft; returns the digest id.
    pub async fn draft_digest(&self, token: &str) -> i64 {
        self.draft_digest_of(token, FEED).await
    }

    /// Imports `feed` and creates a "Latest research" draft of its items; returns its id.
    pub async fn draft_digest_of(&self, token: &str, feed: &'static str) -> i64 {
        let feed = serde_json::json!({ "url": serve_feed(feed) });
        assert_eq!(
            self.admin_post(token, "/feeds/import", feed)
                .await
                .status()
                .as_u16(),
            200
        );
        let body =
            serde_json::json!({"subject": "Latest research", "intro": "Two new **studies**."});
        let response = self.admin_post(token, "/digests", body).await;
        assert_eq!(response.status().as_u16(), 201);
        response.json::<serde_json::Value>().await.unwrap()["id"]
            .as_i64()
            .unwrap()
    }

    /// A draft as above, sent: one delivery per confirmed subscriber is queued.
    pub async fn queued_digest(&self, token: &str) -> i64 {
        let id = self.draft_digest(token).await;
        let (status, body) = self.send_digest(token, id).await;
        assert_eq!(status, 202, "{body}");
        id
    }

    /// `POST /admin/api/digests/{id}/send`: the answer's status and JSON.
    pub async fn send_digest(&self, token: &str, id: i64) -> (u16, serde_json::Value) {
        let response = self
            .admin_post(token, &format!("/digests/{id}/send"), serde_json::json!({}))
            .await;
        (response.status().as_u16(), response.json().await.unwrap())
    }

    /// How many messages each recipient got over SMTP.
    pub fn copies_by_recipient(&self) -> HashMap<String, usize> {
        let mut copies = HashMap::new();
        for mail in self.smtp.all_messages() {
            for rcpt in mail.rcpts {
                *copies.entry(rcpt).or_insert(0) += 1;
            }
        }
        copies
    }

    /// The `newsletter` binary set up for this app's database and SMTP server.
    pub fn command(&self, args: &[&str]) -> std::process::Command {
        use secrecy::ExposeSecret;
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_newsletter"));
        command
            .args(args)
            .env(
                "NEWSLETTER__DATABASE__URL",
                self.settings.database.url.expose_secret(),
            )
            .env(
                "NEWSLETTER__SERVER__BASE_URL",
                &self.settings.server.base_url,
            )
            .env("NEWSLETTER__MAIL__TRANSPORT", "smtp")
            .env("NEWSLETTER__MAIL__SMTP__HOST", "127.0.0.1")
            .env(
                "NEWSLETTER__MAIL__SMTP__PORT",
                self.settings.mail.smtp.port.to_string(),
            )
            .env("NEWSLETTER__MAIL__SMTP__TLS", "none")
            .env(
                "NEWSLETTER__SITE__POSTAL_ADDRESS",
                &self.settings.site.postal_address,
            )
            .env("RUST_LOG", "warn");
        command
    }

    /// `newsletter serve` as deployed, in its own process on a free port, with extra
    /// environment; its log (stderr) is collected as it comes.
    pub fn serve_process(&self, env: &[(&str, &str)]) -> ServiceProcess {
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let mut command = self.command(&["serve"]);
        command
            .env("NEWSLETTER__SERVER__PORT", port.to_string())
            .env("NEWSLETTER__SERVER__BASE_URL", &base)
            .env("NEWSLETTER__SIGNUP__RATE_LIMIT_PER_MINUTE", "1000")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut log = String::new();
            let _ = std::io::Read::read_to_string(&mut stderr, &mut log);
            log
        });
        ServiceProcess {
            child,
            base,
            reader,
        }
    }

    /// A page as a browser gets it (`Accept: text/html`): status and HTML, with `/` unescaped.
    pub async fn page(&self, path: &str) -> (u16, String) {
        let response = self
            .client
            .get(self.url(path))
            .header("Accept", "text/html")
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (
            status,
            response.text().await.unwrap().replace("&#x2f;", "/"),
        )
    }

    /// Waits until a service at `base` answers `/health`.
    pub async fn until_healthy(&self, base: &str) {
        let end = Instant::now() + Duration::from_secs(20);
        while self
            .client
            .get(format!("{base}/health"))
            .send()
            .await
            .is_err()
        {
            assert!(Instant::now() < end, "the service did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the digest's status is `sent` and returns its status JSON; fails the test
    /// after 60 s.
    pub async fn wait_until_sent(&self, token: &str, digest_id: i64) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let status: serde_json::Value = self
                .admin_json(token, &format!("/digests/{digest_id}"))
                .await;
            if status["status"] == "sent" {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "digest {digest_id} is not marked sent after 60 s: {status}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn post_json(&self, path: &str, body: serde_json::Value) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.address))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .form(fields)
            .send()
            .await
            .unwrap()
    }

    pub async fn get(&self, path_or_url: &str) -> reqwest::Response {
        self.client.get(self.url(path_or_url)).send().await.unwrap()
    }

    pub fn url(&self, path_or_url: &str) -> String {
        if path_or_url.starts_with("http") {
            path_or_url.to_string()
        } else {
            format!("{}{path_or_url}", self.address)
        }
    }

    pub async fn signup(&self, email: &str) -> reqwest::Response {
        self.post_json("/subscriptions", serde_json::json!({ "email": email }))
            .await
    }

    /// Signs `email` up and follows the confirmation link that crossed SMTP.
    pub async fn confirmed_subscriber(&self, email: &str) -> ReceivedMail {
        let before = self.smtp.messages_to(email).len();
        assert_eq!(self.signup(email).await.status().as_u16(), 202);
        let mails = self.smtp.wait_for(email, before + 1).await;
        let confirmation = mails.last().expect("a confirmation mail").clone();
        let response = self
            .press_confirm(&confirmation.link("/subscriptions/confirm"))
            .await;
        assert_eq!(response.status().as_u16(), 200);
        confirmation
    }

    /// Follows a confirmation link as a person does: opens the page, then presses its button.
    pub async fn press_confirm(&self, link: &str) -> reqwest::Response {
        press_button(&self.client, link, "Confirm my subscription").await
    }

    /// Runs a query on the app's database.
    pub fn query<T>(&self, work: impl FnOnce(&mut DbConnection) -> QueryResult<T>) -> T {
        let mut conn = self.db.get().unwrap();
        work(&mut conn).unwrap()
    }

    pub fn subscriber_status(&self, email: &str) -> Option<String> {
        use newsletter::db::schema::subscribers::dsl as s;
        let email = email.to_string();
        self.query(move |c| {
            s::subscribers
                .filter(s::email.eq(email))
                .select(s::status)
                .first(c)
                .optional()
        })
    }

    pub fn subscriber_id(&self, email: &str) -> i64 {
        use newsletter::db::schema::subscribers::dsl as s;
        let email = email.to_string();
        self.query(move |c| {
            s::subscribers
                .filter(s::email.eq(email))
                .select(s::id)
                .first(c)
        })
    }

    pub fn count_subscribers(&self) -> i64 {
        use newsletter::db::schema::subscribers::dsl as s;
        self.query(|c| s::subscribers.count().get_result(c))
    }

    /// Statuses of all deliveries of a kind, in queue order.
    pub fn delivery_statuses(&self, kind: &str) -> Vec<String> {
        use newsletter::db::schema::deliveries::dsl as d;
        let kind = kind.to_string();
        self.query(move |c| {
            d::deliveries
                .filter(d::kind.eq(kind))
                .order(d::id)
                .select(d::status)
                .load(c)
        })
    }
}

/// A lock on the database that stops every write to the queue, held by a connection of its
/// own (as another process would) until [`WriteLock::release`] or `at_most` has passed:
/// SQLite's write lock (with an uncommitted insert), or on PostgreSQL an EXCLUSIVE lock on
/// `deliveries` (reads go on).
pub struct WriteLock {
    release: std::sync::mpsc::Sender<()>,
    holder: std::thread::JoinHandle<()>,
}

impl WriteLock {
    /// Returns once the lock is held.
    pub fn hold(app: &TestApp, at_most: Duration) -> WriteLock {
        use diesel::connection::SimpleConnection;
        use secrecy::ExposeSecret;
        let url = app.settings.database.url.expose_secret().to_string();
        let (locked_tx, locked_rx) = std::sync::mpsc::channel();
        let (release, release_rx) = std::sync::mpsc::channel::<()>();
        let holder = std::thread::spawn(move || {
            let mut conn: Box<dyn SimpleConnection> = match url.strip_prefix("sqlite://") {
                Some(path) => {
                    let mut conn = diesel::sqlite::SqliteConnection::establish(path).unwrap();
                    conn.batch_execute(
                        "PRAGMA busy_timeout = 10000; BEGIN IMMEDIATE;
                         INSERT INTO suppressions VALUES ('x', '2026-01-01 00:00:00');",
                    )
                    .unwrap();
                    Box::new(conn)
                }
                None => {
                    let mut conn = PgConnection::establish(&url).unwrap();
                    conn.batch_execute("BEGIN; LOCK TABLE deliveries IN EXCLUSIVE MODE;")
                        .unwrap();
                    Box::new(conn)
                }
            };
            locked_tx.send(()).unwrap();
            let _ = release_rx.recv_timeout(at_most);
            conn.batch_execute("ROLLBACK").unwrap();
        });
        locked_rx.recv().unwrap();
        WriteLock { release, holder }
    }

    /// Lets go (if `at_most` has not passed yet) and waits until the lock is free.
    pub fn release(self) {
        let _ = self.release.send(());
        self.holder.join().unwrap();
    }
}

/// A new SQLite file in `dir`, or a new PostgreSQL database next to `NEWSLETTER_TEST_DATABASE_URL`,
/// with every migration applied.
pub fn fresh_database_url(dir: &std::path::Path) -> String {
    let url = empty_database_url(dir);
    // Migrations run under the same lock: parallel first migrations race in pg_type.
    let _serialized = CREATE_LOCK.lock().unwrap();
    let db = Db::connect(&url.clone().into(), 1).unwrap();
    db.migrate().unwrap();
    url
}

static CREATE_LOCK: Mutex<()> = Mutex::new(());

/// As [`fresh_database_url`], but with no tables yet.
pub fn empty_database_url(dir: &std::path::Path) -> String {
    let Ok(admin_url) = std::env::var("NEWSLETTER_TEST_DATABASE_URL") else {
        return format!("sqlite://{}", dir.join("newsletter.db").display());
    };
    let _serialized = CREATE_LOCK.lock().unwrap();
    let name = format!("nl_test_{:016x}", rand::rng().random::<u64>());
    let mut admin =
        PgConnection::establish(&admin_url).expect("NEWSLETTER_TEST_DATABASE_URL is reachable");
    diesel::sql_query(format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .unwrap();
    let mut url = url::Url::parse(&admin_url).unwrap();
    url.set_path(&name);
    // Plain TCP on loopback. With TLS the test binary sometimes crashed (SIGSEGV) *after* all
    // tests had passed: libpq's OpenSSL teardown at process exit while threads of the many
    // test services still held connections. The binary's own exit over TLS is a separate
    // path (see `min_idle` in src/db/mod.rs).
    if !url.query_pairs().any(|(key, _)| key == "sslmode") {
        url.query_pairs_mut().append_pair("sslmode", "disable");
    }
    url.to_string()
}

/// Runs a command off the test's thread (which may be serving what the command fetches):
/// its exit code and what it printed (stdout, then stderr).
pub async fn output_of(mut command: std::process::Command) -> (Option<i32>, String) {
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code(), said)
}

/// Serves `body` as an RSS feed at `/feed.xml` on a free port; returns the feed's URL.
pub fn serve_feed(body: &'static str) -> String {
    serve_bytes(body.as_bytes().to_vec(), "application/rss+xml")
}

/// Serves `body` with this content type at `/feed.xml`; returns its URL.
pub fn serve_bytes(body: Vec<u8>, content_type: &'static str) -> String {
    serve_http(move |_| {
        actix_web::HttpResponse::Ok()
            .content_type(content_type)
            .body(body.clone())
    })
}

/// An HTTP server on a free loopback port answering every request with `answer(request)`;
/// returns the URL of `/feed.xml` on it.
pub fn serve_http(
    answer: impl Fn(&actix_web::HttpRequest) -> actix_web::HttpResponse + Clone + Send + 'static,
) -> String {
    use actix_web::{App, HttpRequest, HttpServer, web};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = HttpServer::new(move || {
        let answer = answer.clone();
        App::new().default_service(web::to(move |request: HttpRequest| {
            let answer = answer.clone();
            async move { answer(&request) }
        }))
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    format!("http://127.0.0.1:{port}/feed.xml")
}

pub const FEED: &str = r#"<?xml version="1.0"?><rss version="2.0"><channel><title>Clinic research</title>
<link>https://clinic.example/</link><description>Research</description>
<item><title>Prolotherapy after failed back surgery</title><link>https://clinic.example/prolotherapy-failed-back-surgery</link>
<guid>p-1</guid><pubDate>Mon, 23 Nov 2026 10:00:00 GMT</pubDate><description>91% better or not worse after 12 months &amp; more</description></item>
<item><title>PRP for sacroiliac joint pain</title><link>https://clinic.example/prp-si-joint</link>
<guid>p-2</guid><pubDate>Tue, 24 Nov 2026 10:00:00 GMT</pubDate><description>Platelet rich plasma &lt;b&gt;results&lt;/b&gt;</description></item>
</channel></rss>"#;

pub fn on_postgres() -> bool {
    std::env::var("NEWSLETTER_TEST_DATABASE_URL").is_ok()
}

/// An SMTP server that hangs up in the middle of DATA for the first `drops` messages, then
/// accepts mail normally. The fault no maintained server can be told to make; everything else
/// is tested against mailin-embedded.
#[derive(Clone)]
pub struct DroppingSmtp {
    pub port: u16,
    drops: Arc<Mutex<usize>>,
    /// Messages taken whole and kept, then the connection closed before the 250 is sent.
    lost_replies: Arc<Mutex<usize>>,
    pub accepted: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl DroppingSmtp {
    pub fn start(drops: usize) -> DroppingSmtp {
        DroppingSmtp::serve(drops, 0)
    }

    /// Keeps the first `lost` messages but hangs up instead of answering 250: the sender
    /// cannot know they arrived (as when a connection breaks at the worst moment).
    pub fn losing_replies(lost: usize) -> DroppingSmtp {
        DroppingSmtp::serve(0, lost)
    }

    /// Runs on its own thread, so it keeps answering while a test blocks.
    fn serve(drops: usize, lost_replies: usize) -> DroppingSmtp {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let std_listener = TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let server = DroppingSmtp {
            port: std_listener.local_addr().unwrap().port(),
            drops: Arc::new(Mutex::new(drops)),
            lost_replies: Arc::new(Mutex::new(lost_replies)),
            accepted: Arc::default(),
        };
        let state = server.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        std::thread::spawn(move || {
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
                while let Ok((stream, _)) = listener.accept().await {
                    let state = state.clone();
                    tokio::spawn(async move {
                        let (read, mut write) = stream.into_split();
                        let mut lines = BufReader::new(read);
                        let _ = write.write_all(b"220 flaky ESMTP\r\n").await;
                        let mut line = String::new();
                        loop {
                            line.clear();
                            if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
                                return;
                            }
                            let command = line.trim().to_ascii_uppercase();
                            let reply: &[u8] = if command.starts_with("EHLO") {
                                b"250-flaky\r\n250 PIPELINING\r\n"
                            } else if command == "DATA" {
                                let _ = write.write_all(b"354 go ahead\r\n").await;
                                let drop_now = {
                                    let mut drops = state.drops.lock().unwrap();
                                    let now = *drops > 0;
                                    *drops = drops.saturating_sub(1);
                                    now
                                };
                                let mut message = Vec::new();
                                loop {
                                    line.clear();
                                    if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
                                        return;
                                    }
                                    if drop_now && message.len() > 200 {
                                        return; // hang up mid-DATA, no reply
                                    }
                                    if line == ".\r\n" {
                                        break;
                                    }
                                    message.extend_from_slice(line.as_bytes());
                                }
                                state.accepted.lock().unwrap().push(message);
                                let lose_reply = {
                                    let mut lost = state.lost_replies.lock().unwrap();
                                    let now = *lost > 0;
                                    *lost = lost.saturating_sub(1);
                                    now
                                };
                                if lose_reply {
                                    return; // kept, but no 250
                                }
                                b"250 queued\r\n"
                            } else if command == "QUIT" {
                                let _ = write.write_all(b"221 bye\r\n").await;
                                return;
                            } else {
                                b"250 OK\r\n"
                            };
                            if write.write_all(reply).await.is_err() {
                                return;
                            }
                        }
                    });
                }
            })
        });
        server
    }
}
