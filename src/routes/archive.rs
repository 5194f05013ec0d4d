//! The public archive: `/archive` lists the digests that went out (newest first, 20 a page),
//! `/archive/{id}-{words}` shows one as a web page (what the mail's "View in browser" link
//! opens), and `/archive.atom` is a feed of them. Nothing here is personal: no reader's name,
//! no token; the pages are built from the digest alone, never from a reader's copy.

use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, HeaderValue, LOCATION};
use actix_web::{HttpResponse, web};
use chrono::{NaiveDateTime, TimeZone};
use serde::{Deserialize, Serialize};

use super::PageError;
use super::pages::render;
use crate::db::archive::{archived_digest, archived_digests};
use crate::db::digests::{Digest, digest_articles};
use crate::digests::{archive_path, assemble};
use crate::email::DigestContent;
use crate::startup::AppState;

/// Digests on one page of `/archive`.
const PER_PAGE: i64 = 20;
/// Entries in `/archive.atom`.
const FEED_ENTRIES: i64 = 20;
/// Archive pages change only when a digest goes out: caches may keep them a little.
const CACHE_FOR: &str = "public, max-age=300";

#[derive(Deserialize)]
pub struct ArchiveQuery {
    page: Option<String>,
}

#[derive(Serialize)]
struct ListedDigest {
    subject: String,
    url: String,
    date: String,
}

#[derive(Serialize)]
struct ArchivePage {
    title: String,
    digests: Vec<ListedDigest>,
    page: i64,
    pages: i64,
    /// Newer digests (the page before), and older ones (the page after).
    next_url: Option<String>,
    previous_url: Option<String>,
    canonical_url: String,
    feed_url: String,
}

/// `GET /archive?page=N`.
pub async fn archive_index(
    query: web::Query<ArchiveQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let page = match query.page.as_deref().map(str::parse::<i64>) {
        None => 1,
        Some(Ok(page @ 1..=1_000_000)) => page,
        Some(_) => return Ok(HttpResponse::NotFound().finish()),
    };
    let (digests, total) = state
        .db
        .run(move |conn| Ok(archived_digests(conn, page, PER_PAGE)?))
        .await?;
    let pages = ((total + PER_PAGE - 1) / PER_PAGE).max(1);
    if page > pages {
        return Ok(HttpResponse::NotFound().finish());
    }
    let base = state.settings.base_url();
    let page_url = |page: i64| match page {
        1 => format!("{base}/archive"),
        page => format!("{base}/archive?page={page}"),
    };
    let listed = digests
        .iter()
        .map(|digest| ListedDigest {
            subject: digest.subject.clone(),
            url: format!("{base}{}", archive_path(digest.id, &digest.subject)),
            date: sent_on(&state, digest.started_at),
        })
        .collect();
    let view = ArchivePage {
        title: state.templates.texts().text("archive.title", &[]),
        digests: listed,
        page,
        pages,
        next_url: (page > 1).then(|| page_url(page - 1)),
        previous_url: (page < pages).then(|| page_url(page + 1)),
        canonical_url: page_url(page),
        feed_url: format!("{base}/archive.atom"),
    };
    Ok(cacheable(render(&state, "archive", StatusCode::OK, view)?))
}

#[derive(Serialize)]
struct DigestPage {
    subject: String,
    date: String,
    #[serde(flatten)]
    content: DigestContent,
    canonical_url: String,
    archive_url: String,
    feed_url: String,
}

/// `GET /archive/{id}-{words}`: one digest. The id finds it; any other words (a subject
/// changed since, a link cut short) lead to its canonical address.
pub async fn archive_digest(
    key: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let Some(id) = key
        .split('-')
        .next()
        .and_then(|id| id.parse::<i64>().ok())
        .filter(|id| *id > 0)
    else {
        return Ok(HttpResponse::NotFound().finish());
    };
    let Some((digest, content)) = archived_content(&state, id).await? else {
        return Ok(HttpResponse::NotFound().finish());
    };
    let path = archive_path(digest.id, &digest.subject);
    if format!("/archive/{key}") != path {
        return Ok(HttpResponse::MovedPermanently()
            .insert_header((LOCATION, path))
            .finish());
    }
    let base = state.settings.base_url();
    let view = DigestPage {
        subject: digest.subject.clone(),
        date: sent_on(&state, digest.started_at),
        content,
        canonical_url: format!("{base}{path}"),
        archive_url: format!("{base}/archive"),
        feed_url: format!("{base}/archive.atom"),
    };
    Ok(cacheable(render(
        &state,
        "archive_digest",
        StatusCode::OK,
        view,
    )?))
}

/// An archived digest and its content, or None when it is not in the archive.
async fn archived_content(
    state: &AppState,
    id: i64,
) -> anyhow::Result<Option<(Digest, DigestContent)>> {
    let found = state
        .db
        .run(move |conn| {
            Ok(match archived_digest(conn, id)? {
                Some(digest) => Some((digest, digest_articles(conn, id)?)),
                None => None,
            })
        })
        .await?;
    Ok(found.map(|(digest, articles)| (digest.clone(), assemble(digest, articles))))
}

/// `GET /archive.atom`: the newest digests as an Atom feed, each entry with the digest as HTML.
pub async fn archive_feed(state: web::Data<AppState>) -> Result<HttpResponse, PageError> {
    let listed = state
        .db
        .run(|conn| {
            let (digests, _) = archived_digests(conn, 1, FEED_ENTRIES)?;
            let mut with_articles = Vec::with_capacity(digests.len());
            for digest in digests {
                let articles = digest_articles(conn, digest.id)?;
                with_articles.push((digest, articles));
            }
            Ok(with_articles)
        })
        .await?;
    let mut entries = Vec::with_capacity(listed.len());
    for (digest, articles) in listed {
        let sent = utc(digest.started_at.unwrap_or(digest.created_at));
        let url = format!(
            "{}{}",
            state.settings.base_url(),
            archive_path(digest.id, &digest.subject)
        );
        let content = assemble(digest.clone(), articles);
        let html = state
            .templates
            .render_page("archive_content", &content)
            .map_err(PageError)?;
        entries.push(atom_syndication::Entry {
            title: atom_syndication::Text::plain(digest.subject),
            id: url.clone(),
            updated: sent,
            published: Some(sent),
            links: vec![link(&url, "alternate", "text/html")],
            summary: Some(atom_syndication::Text::plain(content.intro_text))
                .filter(|summary| !summary.value.is_empty()),
            content: Some(atom_syndication::Content {
                value: Some(html),
                content_type: Some("html".into()),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    let base = state.settings.base_url();
    let site = &state.settings.site;
    let feed = atom_syndication::Feed {
        title: atom_syndication::Text::plain(site.name.clone()),
        id: format!("{base}/archive"),
        updated: entries
            .first()
            .map(|entry| entry.updated)
            .unwrap_or_else(|| utc(crate::db::now())),
        authors: vec![atom_syndication::Person {
            name: site.name.clone(),
            uri: Some(site.url.clone()).filter(|url| !url.is_empty()),
            ..Default::default()
        }],
        links: vec![
            link(
                &format!("{base}/archive.atom"),
                "self",
                "application/atom+xml",
            ),
            link(&format!("{base}/archive"), "alternate", "text/html"),
        ],
        entries,
        ..Default::default()
    };
    Ok(HttpResponse::Ok()
        .content_type("application/atom+xml; charset=utf-8")
        .insert_header((CACHE_CONTROL, CACHE_FOR))
        .body(feed.to_string()))
}

fn link(href: &str, rel: &str, mime_type: &str) -> atom_syndication::Link {
    atom_syndication::Link {
        href: href.to_string(),
        rel: rel.to_string(),
        mime_type: Some(mime_type.to_string()),
        ..Default::default()
    }
}

fn utc(at: NaiveDateTime) -> atom_syndication::FixedDateTime {
    chrono::Utc.from_utc_datetime(&at).fixed_offset()
}

/// When a digest went out, as a date in the site's time zone and language ("7 December 2026").
fn sent_on(state: &AppState, started_at: Option<NaiveDateTime>) -> String {
    started_at
        .map(|at| {
            let local = crate::configuration::on_clock(at, state.settings.site.tz());
            state.templates.texts().date(local.date_naive())
        })
        .unwrap_or_default()
}

fn cacheable(mut response: HttpResponse) -> HttpResponse {
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static(CACHE_FOR));
    response
}
