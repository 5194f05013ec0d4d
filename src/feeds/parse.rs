//! RSS and Atom items as articles, their HTML reduced to plain text.

use chrono::NaiveDateTime;

use super::FeedError;
use crate::db::articles::NewArticle;

const SUMMARY_MAX_CHARS: usize = 600;

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
