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

/// When a digest is to go out: RFC 3339 with its offset (`2026-12-07T09:00:00+01:00`), or a
/// time in the site's zone (`2026-12-07 09:00`, `2026-12-07T09:00` as a browser's
/// `datetime-local` sends it). Stored as UTC; a time that is not in the future is refused.
pub fn parse_schedule_time(
    text: &str,
    zone: chrono_tz::Tz,
    now: NaiveDateTime,
) -> Result<NaiveDateTime, String> {
    use chrono::TimeZone;
    let text = text.trim();
    let at = match DateTime::parse_from_rfc3339(text) {
        Ok(at) => at.naive_utc(),
        Err(_) => {
            let local = [
                "%Y-%m-%d %H:%M",
                "%Y-%m-%dT%H:%M",
                "%Y-%m-%d %H:%M:%S",
                "%Y-%m-%dT%H:%M:%S",
            ]
            .iter()
            .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
            .ok_or_else(|| {
                format!(
                    "{text:?} is not a time like 2026-12-07T09:00:00+01:00 (RFC 3339) or \
                         2026-12-07 09:00 (in {zone})"
                )
            })?;
            zone.from_local_datetime(&local)
                .earliest()
                .ok_or_else(|| {
                    format!(
                        "{text} does not exist in {zone}: the clocks skip it; pick another time"
                    )
                })?
                .naive_utc()
        }
    };
    if at <= now {
        return Err(format!(
            "{text} is in the past; pick a time to come (it is now {} UTC)",
            now.format("%Y-%m-%d %H:%M")
        ));
    }
    Ok(at)
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

#[cfg(test)]
mod schedule_tests {
    use super::*;

    fn at(text: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").unwrap()
    }

    #[test]
    fn a_schedule_time_is_rfc_3339_or_the_clinics_local_time_and_never_past() {
        let now = at("2026-12-03 08:00");
        let berlin: chrono_tz::Tz = "Europe/Berlin".parse().unwrap();
        assert_eq!(
            parse_schedule_time("2026-12-07T09:00:00+01:00", berlin, now),
            Ok(at("2026-12-07 08:00"))
        );
        // Local times are read in the site's zone: 09:00 in Berlin in winter is 08:00 UTC, in
        // summer 07:00 UTC.
        assert_eq!(
            parse_schedule_time("2026-12-07 09:00", berlin, now),
            Ok(at("2026-12-07 08:00"))
        );
        assert_eq!(
            parse_schedule_time("2027-06-07T09:00", berlin, now),
            Ok(at("2027-06-07 07:00"))
        );
        let gap = parse_schedule_time("2027-03-28 02:30", berlin, now).unwrap_err();
        assert!(gap.contains("does not exist"), "{gap}");
        let past = parse_schedule_time("2026-12-03T07:59:00Z", chrono_tz::UTC, now).unwrap_err();
        assert!(past.contains("in the past"), "{past}");
        let nonsense = parse_schedule_time("next monday", chrono_tz::UTC, now).unwrap_err();
        assert!(nonsense.contains("RFC 3339"), "{nonsense}");
    }
}
