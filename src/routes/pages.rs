//! Server-rendered pages for visitors, in the site's name.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use serde::Serialize;

use crate::email::SiteView;
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

/// Renders `templates/<template>.html` with the site's name around `page`.
pub fn render<T: Serialize>(
    state: &AppState,
    template: &str,
    status: StatusCode,
    page: T,
) -> anyhow::Result<HttpResponse> {
    let base = state.settings.base_url();
    let context = PageContext {
        site_name: &state.settings.site.name,
        site_url: &state.settings.site.url,
        site: SiteView::of(&state.settings.site),
        subscribe_url: format!("{base}/subscribe"),
        page,
    };
    let html = state.templates.render_page(template, context)?;
    Ok(HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .body(html))
}
