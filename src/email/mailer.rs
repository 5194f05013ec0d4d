//! The mailer, built once from config: SMTP (one connection per sending task, `TCP_NODELAY`
//! set, reconnecting after errors) or `.eml` files in the outbox folder.
//!
//! An SMTP transaction's answers are read one by one (MAIL FROM, RCPT TO, DATA, the message),
//! so a refusal says at which stage it came: only a recipient-stage refusal can be about the
//! recipient (see [`crate::domain::classify_refusal`]). After a refusal the server is still
//! talking to us, so the connection is reset (RSET) and kept; after a network error or a
//! timeout it is dropped.
//!
//! A server that offers PIPELINING (RFC 2920; relays do) gets MAIL FROM, RCPT TO and DATA in
//! one write and the message with its closing dot in another: two round trips a mail instead of
//! four. lettre sends a command and waits for its answer, and it does not keep the keywords it
//! does not know, so the session asks EHLO once more to learn whether the server pipelines,
//! writes the commands together with `command` and reads the other answers with
//! `read_response`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::commands::{Data, Ehlo, Mail, Rcpt, Rset};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use secrecy::ExposeSecret;
use tokio::net::TcpStream;

use crate::configuration::{MailSettings, SmtpSettings, SmtpTls, Transport};
use crate::domain::{SmtpStage, Verdict, classify_refusal};

/// Why a message did not go out.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct SendError {
    /// Where the session stopped.
    pub stage: SmtpStage,
    /// The server refused for good (5xx): retrying would not help.
    pub permanent: bool,
    /// The reply code, when the server answered (421, 550, ...).
    pub code: Option<u16>,
    /// The server's answer, or what went wrong on the way.
    pub message: String,
}

impl SendError {
    /// A failure that is worth another try: a dropped connection, a timeout, our outbox.
    fn transient(stage: SmtpStage, message: String) -> SendError {
        SendError {
            stage,
            permanent: false,
            code: None,
            message,
        }
    }

    /// What the refusal means for the delivery and the subscriber.
    pub fn verdict(&self) -> Verdict {
        classify_refusal(self.stage, self.permanent, &self.message)
    }
}

/// A step of an SMTP transaction that failed, and whether the server answered it (then the
/// connection is still usable).
struct StepError {
    error: SendError,
    answered: bool,
}

fn step_error(stage: SmtpStage, error: &lettre::transport::smtp::Error) -> StepError {
    let answered = error.status().is_some();
    StepError {
        error: SendError {
            stage,
            permanent: error.is_permanent(),
            code: error.status().map(u16::from),
            message: error.to_string(),
        },
        answered,
    }
}

#[derive(Clone)]
pub struct Mailer {
    inner: Arc<MailerKind>,
}

enum MailerKind {
    Outbox {
        dir: PathBuf,
    },
    Smtp {
        settings: SmtpSettings,
        hello: ClientId,
    },
}

impl Mailer {
    pub fn new(settings: &MailSettings) -> anyhow::Result<Mailer> {
        let kind = match settings.transport {
            Transport::Outbox => {
                std::fs::create_dir_all(&settings.outbox.dir).with_context(|| {
                    format!(
                        "creating the outbox folder {}",
                        settings.outbox.dir.display()
                    )
                })?;
                MailerKind::Outbox {
                    dir: settings.outbox.dir.clone(),
                }
            }
            Transport::Smtp => {
                if settings.smtp.username.is_some() != settings.smtp.password.is_some() {
                    anyhow::bail!("mail.smtp.username and mail.smtp.password go together");
                }
                MailerKind::Smtp {
                    settings: settings.smtp.clone(),
                    hello: ClientId::default(),
                }
            }
        };
        Ok(Mailer {
            inner: Arc::new(kind),
        })
    }

    /// A session for one sending task; SMTP sessions keep their connection between messages.
    /// Sends one message now on a connection of its own (a test copy, a mail to staff);
    /// `name` names its outbox file.
    pub async fn send_now(&self, message: &lettre::Message, name: &str) -> Result<(), SendError> {
        let mut session = self.session();
        let outcome = session
            .send(message.envelope(), &message.formatted(), name)
            .await;
        session.close().await;
        outcome
    }

    pub fn session(&self) -> MailSession {
        MailSession {
            mailer: self.clone(),
            connection: None,
        }
    }

    pub fn describe(&self) -> String {
        match &*self.inner {
            MailerKind::Outbox { dir } => format!("outbox folder {}", dir.display()),
            MailerKind::Smtp { settings, .. } => format!(
                "smtp {}:{} ({:?})",
                settings.host, settings.port, settings.tls
            ),
        }
    }
}

pub struct MailSession {
    mailer: Mailer,
    connection: Option<Connection>,
}

/// A connection, and whether its server takes pipelined commands.
struct Connection {
    smtp: AsyncSmtpConnection,
    pipelining: bool,
}

impl MailSession {
    /// Sends one message; `name` names its outbox file.
    pub async fn send(
        &mut self,
        envelope: &Envelope,
        message: &[u8],
        name: &str,
    ) -> Result<(), SendError> {
        let mailer = self.mailer.clone();
        match &*mailer.inner {
            MailerKind::Outbox { dir } => write_eml(dir, name, message).await.map_err(|e| {
                SendError::transient(SmtpStage::Data, format!("writing to the outbox: {e:#}"))
            }),
            MailerKind::Smtp { settings, hello } => {
                let timeout = Duration::from_secs(settings.timeout_seconds.max(1));
                let connection = self.connected(settings, hello, timeout).await?;
                let transaction = async {
                    if connection.pipelining {
                        transact_pipelined(&mut connection.smtp, envelope, message).await
                    } else {
                        transact(&mut connection.smtp, envelope, message).await
                    }
                };
                let outcome = match tokio::time::timeout(timeout, transaction).await {
                    Ok(outcome) => outcome,
                    Err(_) => Err(StepError {
                        error: SendError::transient(
                            SmtpStage::Data,
                            "the SMTP server did not answer in time".into(),
                        ),
                        answered: false,
                    }),
                };
                match outcome {
                    Ok(()) => Ok(()),
                    Err(StepError { error, answered }) => {
                        self.recover(answered, timeout).await;
                        Err(error)
                    }
                }
            }
        }
    }

    async fn connected(
        &mut self,
        settings: &SmtpSettings,
        hello: &ClientId,
        timeout: Duration,
    ) -> Result<&mut Connection, SendError> {
        if self.connection.is_none() {
            let connection = tokio::time::timeout(timeout, connect(settings, hello))
                .await
                .map_err(|_| {
                    SendError::transient(
                        SmtpStage::Connect,
                        "connecting to the SMTP server timed out".into(),
                    )
                })?
                .map_err(|e| {
                    SendError::transient(
                        SmtpStage::Connect,
                        format!("connecting to the SMTP server: {e:#}"),
                    )
                })?;
            self.connection = Some(connection);
        }
        self.connection
            .as_mut()
            .ok_or_else(|| SendError::transient(SmtpStage::Connect, "no SMTP connection".into()))
    }

    /// After a refusal the server is still there: reset the transaction and keep the
    /// connection. After anything else, or when the reset gets no answer, the connection is
    /// dropped (closed without a QUIT, which a confused server might never answer) and the
    /// next message opens a new one.
    async fn recover(&mut self, answered: bool, timeout: Duration) {
        let Some(mut connection) = self.connection.take() else {
            return;
        };
        if answered
            && matches!(
                tokio::time::timeout(timeout, connection.smtp.command(Rset)).await,
                Ok(Ok(_))
            )
        {
            self.connection = Some(connection);
        }
    }

    /// Whether the open connection pipelines its commands (for logs and tests); None when
    /// no connection is open.
    pub fn pipelining(&self) -> Option<bool> {
        self.connection.as_ref().map(|c| c.pipelining)
    }

    /// Says goodbye to the SMTP server, if connected, without waiting long for its answer.
    pub async fn close(&mut self) {
        if let Some(mut connection) = self.connection.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), connection.smtp.quit()).await;
        }
    }
}

/// MAIL FROM, RCPT TO, DATA and the message, each answer checked where it comes.
async fn transact(
    connection: &mut AsyncSmtpConnection,
    envelope: &Envelope,
    message: &[u8],
) -> Result<(), StepError> {
    let options = mail_options(connection, envelope, message)?;
    connection
        .command(Mail::new(envelope.from().cloned(), options))
        .await
        .map_err(|e| step_error(SmtpStage::MailFrom, &e))?;
    for to in envelope.to() {
        connection
            .command(Rcpt::new(to.clone(), Vec::new()))
            .await
            .map_err(|e| step_error(SmtpStage::RcptTo, &e))?;
    }
    connection
        .command(Data)
        .await
        .map_err(|e| step_error(SmtpStage::Data, &e))?;
    connection
        .message(message)
        .await
        .map_err(|e| step_error(SmtpStage::Data, &e))?;
    Ok(())
}

/// The same transaction pipelined: MAIL FROM, each RCPT TO and DATA in one write, then every
/// answer read, in order, before the first refusal is reported, so the connection stays in step
/// for the RSET that follows a refusal. Then the message and its closing dot in one write.
async fn transact_pipelined(
    connection: &mut AsyncSmtpConnection,
    envelope: &Envelope,
    message: &[u8],
) -> Result<(), StepError> {
    use std::fmt::Write;
    let options = mail_options(connection, envelope, message)?;
    let mut commands = Mail::new(envelope.from().cloned(), options).to_string();
    for to in envelope.to() {
        let _ = write!(commands, "{}", Rcpt::new(to.clone(), Vec::new()));
    }
    let _ = write!(commands, "{Data}");
    let mut failure = connection
        .command(commands)
        .await
        .map_err(|e| step_error(SmtpStage::MailFrom, &e))
        .err();
    for _ in envelope.to() {
        let answer = connection.read_response().await;
        if let (None, Err(e)) = (&failure, answer) {
            failure = Some(step_error(SmtpStage::RcptTo, &e));
        }
    }
    let data = connection.read_response().await;
    match (failure, data) {
        (None, Err(e)) => return Err(step_error(SmtpStage::Data, &e)),
        (None, Ok(_)) => {}
        (Some(failure), Err(_)) => return Err(failure),
        // The server waits for a message of a refused transaction (it should not): the
        // connection is dropped rather than sending it anything.
        (Some(failure), Ok(_)) => {
            return Err(StepError {
                answered: false,
                ..failure
            });
        }
    }
    let answer = match dot_stuffed(message) {
        Some(whole) => connection.command(whole).await,
        None => connection.message(message).await,
    };
    answer.map_err(|e| step_error(SmtpStage::Data, &e))?;
    Ok(())
}

/// The message as lettre sends it after DATA (a dot that starts a line doubled, then
/// CRLF . CRLF), as one string for one write; None if it is not UTF-8 (lettre's `message`
/// writes it then, in two writes).
fn dot_stuffed(message: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(message).ok()?;
    let mut wire = String::with_capacity(text.len() + 16);
    if text.starts_with('.') {
        wire.push('.');
    }
    let mut rest = text;
    while let Some(at) = rest.find("\r\n.") {
        wire.push_str(&rest[..at + 3]);
        wire.push('.');
        rest = &rest[at + 3..];
    }
    wire.push_str(rest);
    wire.push_str("\r\n.\r\n");
    Some(wire)
}

/// The MAIL FROM parameters this message needs, or why the server cannot take it.
fn mail_options(
    connection: &AsyncSmtpConnection,
    envelope: &Envelope,
    message: &[u8],
) -> Result<Vec<MailParameter>, StepError> {
    let mut options = Vec::new();
    let international = envelope
        .from()
        .into_iter()
        .chain(envelope.to())
        .any(|address| !AsRef::<str>::as_ref(address).is_ascii());
    if international {
        if !connection
            .server_info()
            .supports_feature(Extension::SmtpUtfEight)
        {
            return Err(StepError {
                error: SendError {
                    stage: SmtpStage::RcptTo,
                    permanent: true,
                    code: None,
                    message:
                        "the mail relay does not take internationalized addresses (no SMTPUTF8)"
                            .into(),
                },
                answered: true,
            });
        }
        options.push(MailParameter::SmtpUtfEight);
    }
    if !message.is_ascii()
        && connection
            .server_info()
            .supports_feature(Extension::EightBitMime)
    {
        options.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    Ok(options)
}

async fn connect(settings: &SmtpSettings, hello: &ClientId) -> anyhow::Result<Connection> {
    let address = (settings.host.as_str(), settings.port);
    let mut connection = match settings.tls {
        // Implicit TLS: lettre opens the socket itself.
        SmtpTls::Tls => AsyncSmtpConnection::connect_tokio1(
            address,
            Some(Duration::from_secs(settings.timeout_seconds)),
            hello,
            Some(TlsParameters::new(settings.host.clone())?),
            None,
        )
        .await
        .context("opening a TLS connection")?,
        SmtpTls::None | SmtpTls::Starttls => {
            // Without TCP_NODELAY, Nagle's algorithm and the server's delayed ACK cost ~40 ms a
            // message, because lettre writes the closing "." apart from the body.
            let stream = TcpStream::connect(address)
                .await
                .context("opening a TCP connection")?;
            stream.set_nodelay(true).context("setting TCP_NODELAY")?;
            AsyncSmtpConnection::connect_with_transport(Box::new(stream), hello)
                .await
                .context("greeting the server")?
        }
    };
    if settings.tls == SmtpTls::Starttls {
        connection
            .starttls(TlsParameters::new(settings.host.clone())?, hello)
            .await
            .context("STARTTLS")?;
    }
    // lettre keeps only the EHLO keywords it knows; PIPELINING is not one of them. Asked
    // before AUTH: a second EHLO resets the session, and some servers forget the login too.
    let pipelining = connection
        .command(Ehlo::new(hello.clone()))
        .await
        .context("greeting the server (EHLO)")?
        .message()
        .any(|line| line.trim().eq_ignore_ascii_case("PIPELINING"));
    if let (Some(user), Some(password)) = (&settings.username, &settings.password) {
        let credentials = Credentials::new(user.clone(), password.expose_secret().to_string());
        connection
            .auth(&[Mechanism::Plain, Mechanism::Login], &credentials)
            .await
            .context("authenticating")?;
    }
    Ok(Connection {
        smtp: connection,
        pipelining,
    })
}

/// Writes atomically, so a reader of the folder never sees half a message.
/// Writes the message as `name.eml` and, beside it, its HTML part decoded as `name.html`, so
/// a mail in the outbox opens in any browser, links and all. The `.html` goes first: a reader
/// waiting for the newest `.eml` finds its page already there.
async fn write_eml(dir: &std::path::Path, name: &str, message: &[u8]) -> anyhow::Result<()> {
    if let Some(html) = html_part(message) {
        write_whole(dir, &format!("{name}.html"), html.as_bytes()).await?;
    }
    write_whole(dir, &format!("{name}.eml"), message).await
}

/// Written under a hidden name, then renamed: nobody sees half a file.
async fn write_whole(dir: &std::path::Path, file: &str, content: &[u8]) -> anyhow::Result<()> {
    let partial = dir.join(format!(".{file}.partial"));
    tokio::fs::write(&partial, content).await?;
    tokio::fs::rename(&partial, dir.join(file)).await?;
    Ok(())
}

fn html_part(message: &[u8]) -> Option<String> {
    let parsed = mail_parser::MessageParser::default().parse(message)?;
    (parsed.html_body_count() > 0)
        .then(|| parsed.body_html(0).map(|html| html.into_owned()))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::dot_stuffed;

    #[test]
    fn dots_that_start_a_line_are_doubled_as_lettre_doubles_them() {
        assert_eq!(
            dot_stuffed(b".a\r\nb.c\r\n.\r\n..d\r\n\r\n.").unwrap(),
            "..a\r\nb.c\r\n..\r\n...d\r\n\r\n..\r\n.\r\n"
        );
        assert_eq!(dot_stuffed(b"plain").unwrap(), "plain\r\n.\r\n");
        assert_eq!(dot_stuffed(b"\xff"), None);
    }
}
