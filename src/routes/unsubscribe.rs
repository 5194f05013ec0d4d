//! `GET /unsubscribe?token=…` shows one button and changes nothing (link scanners follow GETs);
//! `POST /unsubscribe?token=…` unsubscribes, also as RFC 8058 one-click
//! (`List-Unsubscribe=One-Click` in the body). Idempotent.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;

use super::pages::{Page, render};
use super::{PageError, event_context};
use crate::db::subscribers::{find_subscriber_by_unsubscribe_token, unsubscribe_subscriber};
use crate::domain::{Token, mask_address};
use crate::startup::AppState;
use serde::Deserialize;

#[derive(Deserialize)]
pub struct UnsubscribeQuery {
    token: Option<String>,
    /// The link of a preview or test copy.
    preview: Option<String>,
}

#[derive(Serialize)]
struct UnsubscribePage {
    title: String,
    email: String,
    action: String,
}

pub async fn unsubscribe_page(
    query: web::Query<UnsubscribeQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    if query.preview.is_some() {
        return Ok(preview_link(&state)?);
    }
    let Some(token) = query.token.as_deref().and_then(Token::parse) else {
        return Ok(not_found(&state)?);
    };
    let hash = token.hash();
    let subscriber = state
        .db
        .run(move |conn| Ok(find_subscriber_by_unsubscribe_token(conn, &hash)?))
        .await?;
    let Some(subscriber) = subscriber else {
        return Ok(not_found(&state)?);
    };
    let page = UnsubscribePage {
        title: state.templates.texts().text("unsubscribe.title", &[]),
        email: mask_address(&subscriber.email),
        action: format!(
            "{}/unsubscribe?token={}",
            state.settings.base_url(),
            token.as_str()
        ),
    };
    Ok(render(&state, "unsubscribe", StatusCode::OK, page)?)
}

pub async fn unsubscribe(
    request: HttpRequest,
    query: web::Query<UnsubscribeQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    if query.preview.is_some() {
        return Ok(preview_link(&state)?);
    }
    let Some(token) = query.token.as_deref().and_then(Token::parse) else {
        return Ok(not_found(&state)?);
    };
    let context = event_context(&request, &state, "unsubscribe-link");
    let hash = token.hash();
    let done = state
        .db
        .run(move |conn| unsubscribe_subscriber(conn, &hash, &context))
        .await?;
    let Some(before) = done else {
        return Ok(not_found(&state)?);
    };
    tracing::info!("unsubscribed");
    // A second click on the same link changes nothing and counts nothing.
    if before.status != crate::domain::SubscriberStatus::Unsubscribed.as_str() {
        state.metrics.unsubscribed();
    }
    let site = &state.settings.site.name;
    let t = state.templates.texts();
    let mut page = Page::new(
        &t.text("unsubscribe.done_title", &[]),
        &[
            &t.text("unsubscribe.done_text", &[("site", site)]),
            &t.text("unsubscribe.done_again", &[]),
        ],
    );
    page.show_subscribe_link = true;
    Ok(page.render(&state, StatusCode::OK)?)
}

/// The unsubscribe link of a preview or test copy: nobody to unsubscribe, and it says so.
fn preview_link(state: &AppState) -> anyhow::Result<HttpResponse> {
    let t = state.templates.texts();
    Page::new(
        &t.text("unsubscribe.preview_title", &[]),
        &[
            &t.text("unsubscribe.preview_text", &[]),
            &t.text("unsubscribe.preview_own", &[]),
        ],
    )
    .render(state, StatusCode::OK)
}

fn not_found(state: &AppState) -> anyhow::Result<HttpResponse> {
    let t = state.templates.texts();
    let mut page = Page::new(
        &t.text("unsubscribe.unknown_title", &[]),
        &[&t.text("unsubscribe.unknown_text", &[])],
    );
    page.show_subscribe_link = true;
    page.render(state, StatusCode::NOT_FOUND)
}
