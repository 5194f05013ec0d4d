//! RSS and Atom items as articles, their HTML reduced to plain text.

use chrono::NaiveDateTime;
use url::Url;

use super::FeedError;
use crate::db::articles::NewArticle;

const SUMMARY_MAX_CHARS: usize = 600;
const TITLE_MAX_CHARS: usize = 300;
const IMAGE_ALT_MAX_CHARS: usize = 300;

/// RSS or Atom items as articles. `fetched_from` is where the feed came from (none for a file).
///
/// Links may be relative: they are resolved against `xml:base` where the feed has one, else
/// against the feed's own address (its `rel="self"` link), else where it was fetched from. Only
/// http(s) links become articles; an item without one, or without a title, is left out.
pub fn parse_feed(bytes: &[u8], fetched_from: Option<&str>) -> Result<Vec<NewArticle>, FeedError> {
    let parse = |base: Option<&str>| {
        feed_rs::parser::Builder::new()
            .base_uri(base)
            .build()
            .parse(bytes)
            .map_err(|e| FeedError::Parse(e.to_string()))
    };
    let mut feed = parse(None)?;
    let fetched = fetched_from.and_then(|u| Url::parse(u).ok());
    let own = feed
        .links
        .iter()
        .find(|l| l.rel.as_deref() == Some("self"))
        .and_then(|l| absolute(&l.href, fetched.as_ref()));
    let base = own.or(fetched);
    let relative = feed
        .entries
        .iter()
        .any(|e| e.links.iter().any(|l| Url::parse(&l.href).is_err()));
    if let (true, Some(base)) = (relative, &base) {
        feed = parse(Some(base.as_str()))?;
    }
    let now = crate::db::now();
    Ok(feed
        .entries
        .into_iter()
        .filter_map(|entry| {
            let url = article_link(&entry.links, base.as_ref())?;
            let title = truncate(&text_of(entry.title.as_ref()?), TITLE_MAX_CHARS);
            if title.is_empty() {
                return None;
            }
            let summary = entry
                .summary
                .as_ref()
                .map(text_of)
                .filter(|s| !s.is_empty())
                .or_else(|| {
                    let body = entry.content.as_ref()?.body.as_deref()?;
                    Some(plain_text(body))
                })
                .map(|s| truncate(&s, SUMMARY_MAX_CHARS))
                .unwrap_or_default();
            let image = article_image(&entry, base.as_ref());
            let published_at: NaiveDateTime = entry
                .published
                .or(entry.updated)
                .map(|d| d.naive_utc())
                .unwrap_or(now);
            Some(NewArticle {
                title,
                url: url.to_string(),
                summary,
                published_at,
                feed_guid: Some(entry.id),
                image,
            })
        })
        .collect())
}

/// The item's page: its `alternate` link (or one without a `rel`), absolute and http(s).
fn article_link(links: &[feed_rs::model::Link], base: Option<&Url>) -> Option<Url> {
    links
        .iter()
        .filter(|l| matches!(l.rel.as_deref(), None | Some("alternate")))
        .chain(links.iter())
        .find_map(|l| absolute(&l.href, base))
        .filter(|url| matches!(url.scheme(), "http" | "https"))
}

/// The item's picture and what it shows: an image enclosure or `media:content`, else a media
/// thumbnail, else the first `<img>` of its content or summary. Absolute and http(s) only.
fn article_image(entry: &feed_rs::model::Entry, base: Option<&Url>) -> Option<(String, String)> {
    let web = |href: &str| absolute(href, base).filter(|u| matches!(u.scheme(), "http" | "https"));
    for media in &entry.media {
        let alt = media
            .description
            .as_ref()
            .or(media.title.as_ref())
            .map(text_of)
            .unwrap_or_default();
        let content = media.content.iter().find_map(|c| {
            let url = c.url.as_ref()?;
            let image = match &c.content_type {
                Some(kind) => kind.ty().as_str() == "image",
                None => looks_like_an_image(url.path()),
            };
            image.then(|| url.to_string())
        });
        let found = content.or_else(|| media.thumbnails.first().map(|t| t.image.uri.clone()));
        if let Some(url) = found.as_deref().and_then(web) {
            return Some((url.to_string(), truncate(&alt, IMAGE_ALT_MAX_CHARS)));
        }
    }
    let html = entry
        .content
        .as_ref()
        .and_then(|c| c.body.as_deref())
        .into_iter()
        .chain(entry.summary.as_ref().map(|s| s.content.as_str()));
    let img = scraper::Selector::parse("img[src]").ok()?;
    html.filter_map(|html| {
        let fragment = scraper::Html::parse_fragment(html);
        fragment.select(&img).find_map(|e| {
            let url = web(e.value().attr("src")?)?;
            let alt = e.value().attr("alt").unwrap_or_default();
            Some((url.to_string(), truncate(alt.trim(), IMAGE_ALT_MAX_CHARS)))
        })
    })
    .next()
}

fn looks_like_an_image(path: &str) -> bool {
    let path = path.to_ascii_lowercase();
    [".jpg", ".jpeg", ".png", ".gif", ".webp", ".avif", ".svg"]
        .iter()
        .any(|ext| path.ends_with(ext))
}

fn absolute(href: &str, base: Option<&Url>) -> Option<Url> {
    let href = href.trim();
    if href.is_empty() {
        return None;
    }
    Url::parse(href)
        .ok()
        .or_else(|| base.and_then(|b| b.join(href).ok()))
}

/// A feed text as plain text: HTML (`type="html"`, most RSS descriptions) loses its markup.
fn text_of(text: &feed_rs::model::Text) -> String {
    if text.content_type.subty().as_str() == "html" || text.content.contains('<') {
        plain_text(&text.content)
    } else {
        text.content
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Feed summaries are often HTML: keep the words, drop the tags, scripts and styles, decode
/// the entities.
pub fn plain_text(html: &str) -> String {
    let fragment = scraper::Html::parse_fragment(html);
    let mut text = String::with_capacity(html.len());
    for node in fragment.root_element().descendants() {
        let scraper::Node::Text(words) = node.value() else {
            continue;
        };
        let hidden = node.ancestors().any(|a| {
            a.value()
                .as_element()
                .is_some_and(|e| matches!(e.name(), "script" | "style" | "noscript" | "template"))
        });
        if !hidden {
            text.push_str(words);
            text.push(' ');
        }
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
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
    fn an_article_takes_its_picture_from_an_enclosure_media_or_its_content() {
        let feed = br#"<?xml version="1.0"?><rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/"><channel><title>C</title><link>https://clinic.example/</link><description>d</description>
<item><title>Enclosed</title><link>https://clinic.example/a</link><enclosure url="https://clinic.example/a.jpg" type="image/jpeg" length="1"/></item>
<item><title>Podcast</title><link>https://clinic.example/p</link><enclosure url="https://clinic.example/p.mp3" type="audio/mpeg" length="1"/></item>
<item><title>Media</title><link>https://clinic.example/m</link><media:content url="https://clinic.example/m.png" medium="image"><media:description>An X-ray of a lower spine</media:description></media:content></item>
<item><title>Inline</title><link>https://clinic.example/i</link><description>&lt;p&gt;Text &lt;img src="/img/knee.webp" alt="A knee, injected"&gt;&lt;/p&gt;</description></item>
<item><title>Local</title><link>https://clinic.example/l</link><description>&lt;img src="file:///etc/passwd"&gt;</description></item>
</channel></rss>"#;
        let items = parse_feed(feed, Some("https://clinic.example/feed.xml")).unwrap();
        let images: Vec<Option<(String, String)>> = items.into_iter().map(|a| a.image).collect();
        assert_eq!(
            images,
            [
                Some(("https://clinic.example/a.jpg".into(), String::new())),
                None,
                Some((
                    "https://clinic.example/m.png".into(),
                    "An X-ray of a lower spine".into()
                )),
                Some((
                    "https://clinic.example/img/knee.webp".into(),
                    "A knee, injected".into()
                )),
                None,
            ]
        );
    }

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
        let items = parse_feed(rss, None).unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(
            (items[0].title.as_str(), items[0].summary.as_str()),
            ("A", "s")
        );
        let atom = br#"<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>t</title>
            <id>urn:x</id><updated>2026-11-24T10:00:00Z</updated>
            <entry><title>B</title><link href="https://x.example/b"/><id>urn:b</id><updated>2026-11-24T10:00:00Z</updated>
            <summary>Sum</summary></entry></feed>"#;
        let items = parse_feed(atom, None).unwrap();
        assert_eq!(items[0].url, "https://x.example/b");
        assert_eq!(items[0].feed_guid.as_deref(), Some("urn:b"));
        assert!(matches!(
            parse_feed(b"not a feed", None),
            Err(FeedError::Parse(_))
        ));
    }

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/tests/fixtures/feeds/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// Where the tests serve feeds from; a feed with an address of its own must not have its
    /// links resolved against this.
    const FETCHED: &str = "http://127.0.0.1:9/feed.xml";

    #[test]
    fn eight_real_feeds_become_articles_with_absolute_http_links_and_plain_text() {
        let cases = [
            ("wordpress-rss2-norm2782.xml", 10),
            ("wordpress-atom10-norm2782.xml", 10),
            ("atom-tpm-script-relative-links.atom", 20),
            ("rss1-golem-iso-8859-1.rdf", 1),
            ("rss2-relative-urls-arcgames.xml", 2),
            ("atom-heise-utf8-german.atom", 15),
            ("rss2-wapo-wellness-health.xml", 29),
        ];
        for (name, count) in cases {
            let articles = parse_feed(&fixture(name), Some(FETCHED)).unwrap();
            assert_eq!(articles.len(), count, "{name}");
            for a in &articles {
                let url = Url::parse(&a.url).unwrap();
                assert!(
                    matches!(url.scheme(), "http" | "https"),
                    "{name}: {}",
                    a.url
                );
                assert_ne!(url.host_str(), Some("127.0.0.1"), "{name}: {}", a.url);
                assert!(
                    !a.title.is_empty() && a.title.chars().count() <= 300,
                    "{name}"
                );
                for text in [&a.title, &a.summary] {
                    for markup in ["<p", "<a ", "<img", "<br", "<div", "<script", "&#", "&amp;"] {
                        assert!(!text.contains(markup), "{name}: {markup} in {text}");
                    }
                    assert!(
                        !text.contains("widgets.js") && !text.contains("window."),
                        "{name}: {text}"
                    );
                }
            }
        }
        let titles = |name| -> Vec<String> {
            parse_feed(&fixture(name), Some(FETCHED))
                .unwrap()
                .into_iter()
                .map(|a| a.title)
                .collect()
        };
        assert_eq!(
            titles("wordpress-rss2-norm2782.xml")[0],
            "Wth\u{2026} reading books?"
        );
        assert_eq!(
            titles("wordpress-atom10-norm2782.xml")[0],
            "Wth\u{2026} reading books?"
        );
        assert!(titles("rss1-golem-iso-8859-1.rdf")[0].contains("Glasfaserförderung"));
        assert!(titles("atom-heise-utf8-german.atom")[1].contains("Bewerbungen für Vorträge"));
        let links = |name| -> Vec<String> {
            parse_feed(&fixture(name), Some(FETCHED))
                .unwrap()
                .into_iter()
                .map(|a| a.url)
                .collect()
        };
        assert!(
            links("rss2-relative-urls-arcgames.xml")[0]
                .starts_with("http://www.arcgames.com/en/games/neverwinter/news/detail/10743874-")
        );
        assert!(
            links("atom-tpm-script-relative-links.atom")[0]
                .starts_with("http://talkingpointsmemo.com/livewire/hannity-announces")
        );
        assert_eq!(
            links("wordpress-atom10-norm2782.xml")[0],
            "http://www.norm2782.com/2009/03/wth-reading-books/",
            "the alternate link, not the comments"
        );
    }

    #[test]
    fn a_truncated_feed_is_a_clear_error() {
        let error =
            parse_feed(&fixture("malformed-reuters-truncated.xml"), Some(FETCHED)).unwrap_err();
        assert!(matches!(error, FeedError::Parse(_)), "{error}");
    }

    #[test]
    fn only_http_links_become_articles_and_titles_are_bounded() {
        let long = "Long ".repeat(100);
        let rss = format!(
            r#"<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>
            <item><title>Script</title><link>javascript:alert(1)</link></item>
            <item><title>Mail</title><link>mailto:x@example.org</link></item>
            <item><title>Relative</title><link>/a</link></item>
            <item><title>{long}</title><link>https://clinic.example/long</link></item>
            </channel></rss>"#
        );
        let articles = parse_feed(rss.as_bytes(), Some("https://clinic.example/feed.xml")).unwrap();
        let urls: Vec<&str> = articles.iter().map(|a| a.url.as_str()).collect();
        assert_eq!(
            urls,
            ["https://clinic.example/a", "https://clinic.example/long"]
        );
        assert_eq!(articles[1].title.chars().count(), 300);
        assert!(articles[1].title.ends_with('…'));
        // From a file there is nothing to resolve a relative link against.
        assert_eq!(parse_feed(rss.as_bytes(), None).unwrap().len(), 1);
    }
}
