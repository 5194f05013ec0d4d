//! Server-rendered pages for visitors, in the site's name.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use serde::Serialize;

use crate::configuration::Settings;
use crate::email::{SiteView, Templates};
use crate::startup::AppState;

/// A page with a title and a few paragraphs, optionally a "send me a new link" button.
#[derive(Debug, Default, Serialize)]
pub struct Page {
    pub title: String,
    pub paragraphs: Vec<String>,
    /// Where the "Send me a new link" button posts to.
    pub resend_url: Option<String>,
    pub show_subscribe_link: bool,
}

#[derive(Serialize)]
struct PageContext<'a, T: Serialize> {
    site_name: &'a str,
    site_url: &'a str,
    site: SiteView,
    subscribe_url: String,
    #[serde(flatten)]
    page: T,
}

impl Page {
    pub fn new(title: &str, paragraphs: &[&str]) -> Page {
        Page {
            title: title.into(),
            paragraphs: paragraphs.iter().map(|p| p.to_string()).collect(),
            ..Page::default()
        }
    }

    pub fn render(self, state: &AppState, status: StatusCode) -> anyhow::Result<HttpResponse> {
        render(state, "message", status, self)
    }

    /// A page without the template engine, for when rendering itself failed.
    pub fn fallback(title: &str, text: &str) -> String {
        format!(
            "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" \
             content=\"width=device-width, initial-scale=1\"><title>{title}</title></head><body \
             style=\"font-family:sans-serif;max-width:34rem;margin:2rem auto;padding:0 1rem\"><h1>{title}</h1>\
             <p>{text}</p></body></html>"
        )
    }
}

fn context<'a, T: Serialize>(settings: &'a Settings, page: T) -> PageContext<'a, T> {
    PageContext {
        site_name: &settings.site.name,
        site_url: &settings.site.url,
        site: SiteView::of(&settings.site),
        subscribe_url: format!("{}/subscribe", settings.base_url()),
        page,
    }
}

/// Renders every visitor page once with sample values, at start-up: a template of
/// `templates.dir` that names a value no page has fails here, naming its file, not when a
/// visitor opens it.
pub fn check_pages(templates: &Templates, settings: &Settings) -> anyhow::Result<()> {
    let sample = serde_json::json!({
        "title": "A title",
        "paragraphs": ["A paragraph."],
        "resend_url": "https://news.example.org/subscriptions/confirm/resend?token=sample",
        "show_subscribe_link": true,
        "email": "al***@example.org",
        "name": "Alex Example",
        "action": "https://news.example.org/subscriptions",
        "error": "An error.",
    });
    for page in ["message", "subscribe", "confirm", "unsubscribe"] {
        templates.render_page(page, context(settings, &sample))?;
    }
    // The archive pages show a digest's content: the same sample the mail is tried with.
    let mut archive = serde_json::to_value(crate::email::DigestContent::sample())?;
    let page = serde_json::json!({
        "title": "All digests",
        "digests": [{"subject": "Latest research", "url": "https://news.example.org/archive/1-latest-research", "date": "7 December 2026"}],
        "page": 1,
        "pages": 2,
        "next_url": null,
        "previous_url": "https://news.example.org/archive?page=2",
        "canonical_url": "https://news.example.org/archive",
        "feed_url": "https://news.example.org/archive.atom",
        "archive_url": "https://news.example.org/archive",
        "date": "7 December 2026",
    });
    if let (Some(archive), serde_json::Value::Object(page)) = (archive.as_object_mut(), page) {
        archive.extend(page);
    }
    for page in ["archive", "archive_digest"] {
        templates.render_page(page, context(settings, &archive))?;
    }
    // The feed renders an entry's content alone, without the page around it.
    templates.render_page("archive_content", &archive)?;
    Ok(())
}

/// Renders `templates/<template>.html` with the site's name around `page`.
pub fn render<T: Serialize>(
    state: &AppState,
    template: &str,
    status: StatusCode,
    page: T,
) -> anyhow::Result<HttpResponse> {
    let html = state
        .templates
        .render_page(template, context(&state.settings, page))?;
    Ok(HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .body(html))
}
