//! The parts of a digest that are the same for every reader: its subject, its Markdown intro
//! as HTML and as text, and its articles, read from the database.

use anyhow::Context;
use pulldown_cmark::{Event, Parser, html};

use crate::db::Db;
use crate::db::articles::Article;
use crate::db::digests::{Digest, digest_articles, find_digest};
use crate::email::{ArticleView, DigestContent};

/// The parts of a digest that are the same for everyone, rendered once.
pub async fn load_content(db: &Db, digest_id: i64) -> anyhow::Result<DigestContent> {
    let (digest, articles) = db
        .run(move |conn| {
            let digest = find_digest(conn, digest_id)?
                .with_context(|| format!("digest {digest_id} does not exist"))?;
            Ok((digest, digest_articles(conn, digest_id)?))
        })
        .await?;
    Ok(assemble(digest, articles))
}

/// A digest's shared parts from its row and its articles.
pub fn assemble(digest: Digest, articles: Vec<Article>) -> DigestContent {
    let archive_path = digest
        .archive
        .then(|| super::archive_path(digest.id, &digest.subject));
    DigestContent {
        archive_path,
        subject: digest.subject,
        intro_html: markdown_to_html(&digest.intro),
        intro_text: digest.intro.trim().to_string(),
        articles: articles
            .into_iter()
            .map(|a| ArticleView {
                image_alt: a
                    .image_alt
                    .filter(|alt| !alt.trim().is_empty())
                    .unwrap_or_else(|| a.title.clone()),
                image_url: a.image_url.unwrap_or_default(),
                title: a.title,
                url: a.url,
                summary: a.summary,
                // ISO: templates write it in the site's language (`| date`).
                published: a.published_at.format("%Y-%m-%d").to_string(),
            })
            .collect(),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_intros_render_but_raw_html_is_shown_as_text() {
        let html = markdown_to_html("Two new **studies** <script>x</script>");
        assert!(html.contains("<strong>studies</strong>"));
        assert!(html.contains("&lt;script&gt;"));
    }
}
