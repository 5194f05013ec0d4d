//! Digests and articles for staff: feed import, the digest's shared content (rendered once),
//! preview, test send, and the send itself. Used by the admin API and the CLI alike.

use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, NaiveDateTime};
use pulldown_cmark::{Event, Parser, html};

use crate::db::Db;
use crate::db::articles::{NewArticle, import_articles};
use crate::db::deliveries::ClaimedDelivery;
use crate::db::digests::ArticleChoice;
use crate::db::digests::{digest_articles, find_digest};
use crate::domain::{DeliveryKind, SubscriberEmail, Token};
use crate::email::{ArticleView, Composer, DigestContent, Mailer, RenderedEmail, SendError};

/// Largest feed we read.
const MAX_FEED_BYTES: usize = 10 * 1024 * 1024;
const SUMMARY_MAX_CHARS: usize = 600;

/// The parts of a digest that are the same for everyone, rendered once.
pub async fn load_content(db: &Db, digest_id: i64) -> anyhow::Result<DigestContent> {
    let (digest, articles) = db
        .run(move |conn| {
            let digest = find_digest(conn, digest_id)?
                .with_context(|| format!("digest {digest_id} does not exist"))?;
            Ok((digest, digest_articles(conn, digest_id)?))
        })
        .await?;
    Ok(DigestContent {
        subject: digest.subject,
        intro_html: markdown_to_html(&digest.intro),
        intro_text: digest.intro.trim().to_string(),
        articles: articles
            .into_iter()
            .map(|a| ArticleView {
                title: a.title,
                url: a.url,
                summary: a.summary,
                published: a.published_at.format("%-d %B %Y").to_string(),
            })
            .collect(),
    })
}

/// Markdown to HTML, with any raw HTML in it shown as text rather than passed through.
pub fn markdown_to_html(markdown: &str) -> String {
    let events = Parser::new(markdown).map(|event| match event {
        Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
        other => other,
    });
    let mut out = String::new();
    html::push_html(&mut out, events);
    out
}

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

#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error("the feed could not be fetched: {0}")]
    Fetch(String),
    #[error("the feed could not be read as RSS or Atom: {0}")]
    Parse(String),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Imports a feed's items as articles, skipping those already known by link or guid.
/// `source` is an http(s) URL or a file path. Returns (imported, skipped).
pub async fn import_feed(db: &Db, source: &str) -> Result<(usize, usize), FeedError> {
    let bytes = if source.starts_with("http://") || source.starts_with("https://") {
        fetch(source).await?
    } else {
        tokio::fs::read(source)
            .await
            .map_err(|e| FeedError::Fetch(format!("reading {source}: {e}")))?
    };
    let items = parse_feed(&bytes)?;
    let imported = db.run(move |conn| import_articles(conn, &items)).await?;
    tracing::info!(
        source,
        imported = imported.0,
        skipped = imported.1,
        "feed imported"
    );
    Ok(imported)
}

async fn fetch(url: &str) -> Result<Vec<u8>, FeedError> {
    crate::install_crypto_provider();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .user_agent(concat!(
            "newsletter/",
            env!("CARGO_PKG_VERSION"),
            " (feed import)"
        ))
        .build()
        .map_err(|e| FeedError::Fetch(e.to_string()))?;
    let mut response = client
        .get(url)
        .send()
        .await
        .map_err(|e| FeedError::Fetch(error_chain(&e)))?;
    if !response.status().is_success() {
        return Err(FeedError::Fetch(format!(
            "{url} answered {}",
            response.status()
        )));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| FeedError::Fetch(error_chain(&e)))?
    {
        if body.len() + chunk.len() > MAX_FEED_BYTES {
            return Err(FeedError::Fetch(format!(
                "the feed is larger than {MAX_FEED_BYTES} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// RSS or Atom items as articles; an item without a link or title is left out.
pub fn parse_feed(bytes: &[u8]) -> Result<Vec<NewArticle>, FeedError> {
    let feed = feed_rs::parser::parse(bytes).map_err(|e| FeedError::Parse(e.to_string()))?;
    let now = crate::db::now();
    Ok(feed
        .entries
        .into_iter()
        .filter_map(|entry| {
            let url = entry.links.first()?.href.trim().to_string();
            let title = plain_text(&entry.title?.content);
            if url.is_empty() || title.is_empty() {
                return None;
            }
            let summary = entry
                .summary
                .map(|s| s.content)
                .or_else(|| entry.content.and_then(|c| c.body))
                .map(|s| truncate(&plain_text(&s), SUMMARY_MAX_CHARS))
                .unwrap_or_default();
            let published_at: NaiveDateTime = entry
                .published
                .or(entry.updated)
                .map(|d| d.naive_utc())
                .unwrap_or(now);
            Some(NewArticle {
                title,
                url,
                summary,
                published_at,
                feed_guid: Some(entry.id),
            })
        })
        .collect())
}

/// Feed summaries are often HTML: keep the words, drop the tags, decode the entities.
pub fn plain_text(html: &str) -> String {
    let mut text = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match (in_tag, c) {
            (false, '<') => in_tag = true,
            (true, '>') => {
                in_tag = false;
                text.push(' ');
            }
            (false, c) => text.push(c),
            (true, _) => {}
        }
    }
    let decoded = html_escape::decode_html_entities(&text);
    decoded.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let cut: String = text.chars().take(max).collect();
    let cut = cut.rsplit_once(' ').map(|(head, _)| head).unwrap_or(&cut);
    format!("{cut}…")
}

/// Checks an article typed by staff (API or CLI).
pub fn parse_article(
    title: &str,
    url: &str,
    summary: &str,
    published_at: Option<&str>,
) -> Result<NewArticle, String> {
    let title = title.trim();
    if title.is_empty() || title.chars().count() > 300 {
        return Err("title must have 1 to 300 characters".into());
    }
    let parsed = url::Url::parse(url.trim())
        .map_err(|_| "url must be an absolute http(s) URL".to_string())?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("url must be an absolute http(s) URL".into());
    }
    if summary.chars().count() > 5000 {
        return Err("summary must be at most 5000 characters".into());
    }
    let published_at = match published_at.map(str::trim).filter(|p| !p.is_empty()) {
        None => crate::db::now(),
        Some(text) => parse_time(text).ok_or_else(|| {
            "published_at must be a date like 2026-11-23 or 2026-11-23T10:00:00Z".to_string()
        })?,
    };
    Ok(NewArticle {
        title: title.to_string(),
        url: parsed.to_string(),
        summary: summary.trim().to_string(),
        published_at,
        feed_guid: None,
    })
}

/// RFC 3339 (any offset, stored as UTC) or a plain date.
pub fn parse_time(text: &str) -> Option<NaiveDateTime> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.naive_utc())
        .ok()
        .or_else(|| {
            chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })
}

/// Checks a new digest's fields (API and CLI).
pub fn parse_digest(
    subject: &str,
    article_ids: Option<Vec<i64>>,
    since: Option<&str>,
) -> Result<ArticleChoice, String> {
    let subject = subject.trim();
    if subject.is_empty() || subject.chars().count() > 200 || subject.chars().any(char::is_control)
    {
        return Err("subject must have 1 to 200 characters and no line breaks".into());
    }
    match (article_ids, since) {
        (Some(_), Some(_)) => Err("name either article_ids or since, not both".into()),
        (Some(ids), None) => Ok(ArticleChoice::Ids(ids)),
        (None, Some(since)) => parse_time(since)
            .map(ArticleChoice::PublishedSince)
            .ok_or_else(|| "since must be a date like 2026-11-01 or 2026-11-01T00:00:00Z".into()),
        (None, None) => Ok(ArticleChoice::SinceLastDigest),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feed_html_becomes_plain_text() {
        assert_eq!(
            plain_text("Platelet rich plasma <b>results</b> &amp; more"),
            "Platelet rich plasma results & more"
        );
        assert_eq!(plain_text("<p>One</p><p>Two</p>"), "One Two");
    }

    #[test]
    fn markdown_intros_render_but_raw_html_is_shown_as_text() {
        let html = markdown_to_html("Two new **studies** <script>x</script>");
        assert!(html.contains("<strong>studies</strong>"));
        assert!(html.contains("&lt;script&gt;"));
    }

    #[test]
    fn rss_and_atom_items_become_articles() {
        let rss = br#"<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>
            <item><title>A</title><link>https://x.example/a</link><guid>g-a</guid>
            <pubDate>Mon, 23 Nov 2026 10:00:00 GMT</pubDate><description>&lt;i&gt;s&lt;/i&gt;</description></item>
            <item><title>No link</title></item></channel></rss>"#;
        let items = parse_feed(rss).unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(
            (items[0].title.as_str(), items[0].summary.as_str()),
            ("A", "s")
        );
        let atom = br#"<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>t</title>
            <id>urn:x</id><updated>2026-11-24T10:00:00Z</updated>
            <entry><title>B</title><link href="https://x.example/b"/><id>urn:b</id><updated>2026-11-24T10:00:00Z</updated>
            <summary>Sum</summary></entry></feed>"#;
        let items = parse_feed(atom).unwrap();
        assert_eq!(items[0].url, "https://x.example/b");
        assert_eq!(items[0].feed_guid.as_deref(), Some("urn:b"));
        assert!(matches!(
            parse_feed(b"not a feed"),
            Err(FeedError::Parse(_))
        ));
    }
}
