//! A digest as one reader gets it: the preview staff look at, and the test copy they send
//! themselves, both through the same rendering the worker uses.

use anyhow::Context;

use super::content::load_content;
use crate::db::Db;
use crate::db::queue::ClaimedDelivery;
use crate::domain::{DeliveryKind, SubscriberEmail, Token};
use crate::email::{Composer, Mailer, RenderedEmail, SendError};

/// How a digest is previewed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreviewFormat {
    Html,
    Text,
}

/// A delivery as a subscriber would get it, for preview and test sends.
fn sample_delivery(
    digest_id: i64,
    kind: DeliveryKind,
    email: &str,
    message_id_domain: &str,
) -> ClaimedDelivery {
    ClaimedDelivery {
        id: 0,
        kind,
        attempts: 1,
        subscriber_id: None,
        digest_id: Some(digest_id),
        email: email.to_string(),
        name: None,
        message_id: format!(
            "<test.{digest_id}.{}@{message_id_domain}>",
            &Token::generate().as_str()[..12]
        ),
        confirm_token: None,
        unsubscribe_token: Some(Token::generate()),
    }
}

/// A sample delivery's mail, through the same preparation the worker uses.
async fn render_sample(
    db: &Db,
    composer: &Composer,
    delivery: &ClaimedDelivery,
) -> anyhow::Result<RenderedEmail> {
    let digest_id = delivery.digest_id.context("a sample without its digest")?;
    let content = composer.prepare_digest(&load_content(db, digest_id).await?)?;
    composer.render(delivery, Some(&content))
}

/// Exactly what a subscriber would get, rendered for a sample reader.
pub async fn preview(
    db: &Db,
    composer: &Composer,
    digest_id: i64,
    format: PreviewFormat,
) -> anyhow::Result<String> {
    let delivery = sample_delivery(
        digest_id,
        DeliveryKind::Digest,
        "reader@example.org",
        composer.message_id_domain(),
    );
    let mail = render_sample(db, composer, &delivery).await?;
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
    let delivery = sample_delivery(
        digest_id,
        DeliveryKind::Test,
        email.as_str(),
        composer.message_id_domain(),
    );
    let mut mail = render_sample(db, composer, &delivery).await?;
    mail.subject = format!("[Test] {}", mail.subject);
    let message = composer.build(&delivery, mail)?;
    let mut session = mailer.session();
    let outcome = session
        .send(
            message.envelope(),
            &message.formatted(),
            &format!(
                "test-digest-{digest_id}-{}",
                chrono::Utc::now().timestamp_millis()
            ),
        )
        .await;
    session.close().await;
    outcome?;
    tracing::info!(digest = digest_id, to = %email.masked(), "test digest sent");
    Ok(())
}
