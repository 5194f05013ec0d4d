//! The mailer, built once from config: SMTP (one connection per sending task, `TCP_NODELAY`
//! set, reconnecting after errors) or `.eml` files in the outbox folder.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use base64::Engine;
use lettre::address::Envelope;
use lettre::message::dkim::{
    DkimCanonicalization, DkimCanonicalizationType, DkimConfig, DkimSigningAlgorithm,
    DkimSigningKey,
};
use lettre::message::header::HeaderName;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use secrecy::ExposeSecret;
use tokio::net::TcpStream;

use crate::configuration::{DkimSettings, MailSettings, SmtpSettings, SmtpTls, Transport};

/// Why a message did not go out.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct SendError {
    /// The server refused for good (5xx): retrying would not help.
    pub permanent: bool,
    /// The mailbox does not exist (5.1.x): the subscriber bounced.
    pub bounce: bool,
    pub message: String,
}

impl SendError {
    fn transient(message: String) -> SendError {
        SendError {
            permanent: false,
            bounce: false,
            message,
        }
    }

    fn from_smtp(error: &lettre::transport::smtp::Error) -> SendError {
        let message = error.to_string();
        if !error.is_permanent() && !error.is_client() {
            return SendError::transient(message);
        }
        let code: Option<u16> = error.status().map(|c| c.to_string().parse().unwrap_or(0));
        // The enhanced status code follows the basic one, e.g. "permanent error (550): 5.1.1 ...".
        let enhanced_no_user = message.split([':', ' ']).any(|w| w.starts_with("5.1."));
        let bounce =
            enhanced_no_user || matches!(code, Some(550 | 551 | 553)) && !message.contains(" 5.");
        SendError {
            permanent: true,
            bounce,
            message,
        }
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
    connection: Option<AsyncSmtpConnection>,
}

impl MailSession {
    /// Sends one message; `name` names its outbox file.
    pub async fn send(
        &mut self,
        envelope: &Envelope,
        message: &[u8],
        name: &str,
    ) -> Result<(), SendError> {
        match &*self.mailer.inner {
            MailerKind::Outbox { dir } => write_eml(dir, name, message)
                .await
                .map_err(|e| SendError::transient(format!("writing to the outbox: {e:#}"))),
            MailerKind::Smtp { settings, hello } => {
                let timeout = Duration::from_secs(settings.timeout_seconds.max(1));
                if self.connection.is_none() {
                    let connection = tokio::time::timeout(timeout, connect(settings, hello))
                        .await
                        .map_err(|_| {
                            SendError::transient("connecting to the SMTP server timed out".into())
                        })?
                        .map_err(|e| {
                            SendError::transient(format!("connecting to the SMTP server: {e:#}"))
                        })?;
                    self.connection = Some(connection);
                }
                let Some(connection) = self.connection.as_mut() else {
                    return Err(SendError::transient("no SMTP connection".into()));
                };
                let outcome =
                    match tokio::time::timeout(timeout, connection.send(envelope, message)).await {
                        Ok(Ok(_)) => Ok(()),
                        Ok(Err(e)) => Err(SendError::from_smtp(&e)),
                        Err(_) => Err(SendError::transient(
                            "the SMTP server did not answer in time".into(),
                        )),
                    };
                if outcome.is_err() {
                    // lettre leaves a connection unusable after most errors: start afresh.
                    if let Some(mut broken) = self.connection.take() {
                        broken.abort().await;
                    }
                }
                outcome
            }
        }
    }

    /// Says goodbye to the SMTP server, if connected, without waiting long for its answer.
    pub async fn close(&mut self) {
        if let Some(mut connection) = self.connection.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), connection.quit()).await;
        }
    }
}

async fn connect(settings: &SmtpSettings, hello: &ClientId) -> anyhow::Result<AsyncSmtpConnection> {
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
    if let (Some(user), Some(password)) = (&settings.username, &settings.password) {
        let credentials = Credentials::new(user.clone(), password.expose_secret().to_string());
        connection
            .auth(&[Mechanism::Plain, Mechanism::Login], &credentials)
            .await
            .context("authenticating")?;
    }
    Ok(connection)
}

/// Writes atomically, so a reader of the folder never sees half a message.
async fn write_eml(dir: &std::path::Path, name: &str, message: &[u8]) -> anyhow::Result<()> {
    let final_path = dir.join(format!("{name}.eml"));
    let partial = dir.join(format!(".{name}.eml.partial"));
    tokio::fs::write(&partial, message).await?;
    tokio::fs::rename(&partial, &final_path).await?;
    Ok(())
}

/// The DKIM signer from `mail.dkim.*`, or `None` when signing is off. Reads RSA keys as PKCS#1
/// or PKCS#8 PEM (what OpenSSL 3 writes), and Ed25519 keys as PKCS#8 PEM or a base64 seed.
pub fn load_dkim(settings: &DkimSettings) -> anyhow::Result<Option<DkimConfig>> {
    let (Some(domain), Some(selector), Some(path)) = (
        &settings.domain,
        &settings.selector,
        &settings.private_key_file,
    ) else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading mail.dkim.private_key_file {}", path.display()))?;
    let key = parse_dkim_key(&text)
        .with_context(|| format!("mail.dkim.private_key_file {}", path.display()))?;
    // RFC 8058 asks that List-Unsubscribe and List-Unsubscribe-Post be signed. Content-Type is
    // left out: lettre 0.11 canonicalizes the folded multipart Content-Type differently from
    // what it writes, so signatures over it fail every verifier (tests/api/dkim.rs).
    let headers = [
        "From",
        "To",
        "Subject",
        "Date",
        "Message-ID",
        "MIME-Version",
        "List-Id",
        "List-Unsubscribe",
        "List-Unsubscribe-Post",
    ]
    .into_iter()
    .map(HeaderName::new_from_ascii_str)
    .collect();
    let canonicalization = DkimCanonicalization {
        header: DkimCanonicalizationType::Relaxed,
        body: DkimCanonicalizationType::Relaxed,
    };
    Ok(Some(DkimConfig::new(
        selector.clone(),
        domain.clone(),
        key,
        headers,
        canonicalization,
    )))
}

fn parse_dkim_key(text: &str) -> anyhow::Result<DkimSigningKey> {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::pkcs8::DecodePrivateKey;

    let text = text.trim();
    if text.contains("BEGIN RSA PRIVATE KEY") {
        return DkimSigningKey::new(text, DkimSigningAlgorithm::Rsa)
            .map_err(|e| anyhow::anyhow!("bad RSA key: {e}"));
    }
    if text.contains("BEGIN PRIVATE KEY") {
        if let Ok(rsa_key) = rsa::RsaPrivateKey::from_pkcs8_pem(text) {
            let pkcs1 = rsa_key
                .to_pkcs1_pem(rsa::pkcs8::LineEnding::LF)
                .context("converting the RSA key")?;
            return DkimSigningKey::new(&pkcs1, DkimSigningAlgorithm::Rsa)
                .map_err(|e| anyhow::anyhow!("bad RSA key: {e}"));
        }
        // An Ed25519 PKCS#8 key is a fixed 16-byte prefix and the 32-byte seed.
        let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .context("the PEM is not base64")?;
        if der.len() == 48 {
            let seed = base64::engine::general_purpose::STANDARD.encode(&der[16..]);
            return DkimSigningKey::new(&seed, DkimSigningAlgorithm::Ed25519)
                .map_err(|e| anyhow::anyhow!("bad Ed25519 key: {e}"));
        }
        anyhow::bail!("a PKCS#8 key that is neither RSA nor Ed25519");
    }
    DkimSigningKey::new(text, DkimSigningAlgorithm::Ed25519)
        .map_err(|e| anyhow::anyhow!("not a PEM RSA key nor a base64 Ed25519 seed: {e}"))
}
