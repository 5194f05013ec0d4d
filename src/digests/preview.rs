//! A digest as one reader gets it: the preview staff look at, and the test copy they send
//! themselves, both through the same rendering the worker uses.

use super::content::load_content;
use crate::db::Db;
use crate::domain::{DeliveryKind, SubscriberEmail, Token};
use crate::email::{Composer, Letter, Mailer, PreparedMail, SendError};

/// How a digest is previewed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreviewFormat {
    Html,
    Text,
}

/// The name a preview greets, so staff see the greeting readers with a name get.
pub const SAMPLE_READER: &str = "Alex Example";

/// A copy as a subscriber would get it, for preview and test sends: greeted by name, its
/// unsubscribe link leading to a page that says it was a sample.
fn sample_letter(
    composer: &Composer,
    kind: DeliveryKind,
    email: &str,
    name: Option<&str>,
    digest_id: i64,
) -> Letter {
    Letter {
        delivery_id: None,
        kind,
        to: email.to_string(),
        name: name.map(str::to_string),
        message_id: composer.one_off_message_id(&format!("test.{digest_id}")),
        confirm_token: None,
        unsubscribe_token: Some(Token::generate()),
        sample: true,
    }
}

/// A digest prepared as the worker prepares it.
async fn prepared(db: &Db, composer: &Composer, digest_id: i64) -> anyhow::Result<PreparedMail> {
    composer.prepare_digest(&load_content(db, digest_id).await?)
}

/// Exactly what a subscriber would get, rendered for a sample reader.
pub async fn preview(
    db: &Db,
    composer: &Composer,
    digest_id: i64,
    format: PreviewFormat,
) -> anyhow::Result<String> {
    let letter = sample_letter(
        composer,
        DeliveryKind::Digest,
        "reader@example.org",
        Some(SAMPLE_READER),
        digest_id,
    );
    let mail = composer.render(&letter, Some(&prepared(db, composer, digest_id).await?))?;
    Ok(match format {
        PreviewFormat::Html => mail.html,
        PreviewFormat::Text => format!("Subject: {}\n\n{}", mail.subject, mail.text),
    })
}

#[derive(Debug, thiserror::Error)]
pub enum TestSendError {
    #[error("{0}")]
    InvalidAddress(String),
    #[error("the mail server refused the test: {0}")]
    Refused(#[from] SendError),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Sends one copy of a digest to `to` now, its subject marked "[Test]".
pub async fn send_test(
    db: &Db,
    composer: &Composer,
    mailer: &Mailer,
    digest_id: i64,
    to: &str,
) -> Result<(), TestSendError> {
    let email = SubscriberEmail::parse(to).map_err(TestSendError::InvalidAddress)?;
    let letter = sample_letter(
        composer,
        DeliveryKind::Test,
        email.as_str(),
        None,
        digest_id,
    );
    // The same rendering and encoding as the worker's copies.
    let mut mail =
        composer.render_wire(&letter, Some(&prepared(db, composer, digest_id).await?))?;
    mail.subject = format!("[Test] {}", mail.subject);
    let message = composer.build_wire(&letter, mail)?;
    let name = format!(
        "test-digest-{digest_id}-{}",
        chrono::Utc::now().timestamp_millis()
    );
    mailer.send_now(&message, &name).await?;
    tracing::info!(digest = digest_id, to = %email.masked(), "test digest sent");
    Ok(())
}
