//! What staff type for articles and digests (API and CLI alike), checked once.

use chrono::{DateTime, NaiveDateTime};

use crate::db::articles::NewArticle;
use crate::db::digests::ArticleChoice;

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
        image: None,
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
        (None, None) => Ok(ArticleChoice::NotYetSent),
    }
}
