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
        title: "Unsubscribe".into(),
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
    if done.is_none() {
        return Ok(not_found(&state)?);
    }
    tracing::info!("unsubscribed");
    let site = &state.settings.site.name;
    let mut page = Page::new(
        "You are unsubscribed",
        &[
            &format!("You will get no more mail from {site}. We are sorry to see you go."),
            "Unsubscribed by mistake? You can sign up again at any time.",
        ],
    );
    page.show_subscribe_link = true;
    Ok(page.render(&state, StatusCode::OK)?)
}

/// The unsubscribe link of a preview or test copy: nobody to unsubscribe, and it says so.
fn preview_link(state: &AppState) -> anyhow::Result<HttpResponse> {
    Page::new(
        "This was a preview",
        &[
            "This link came from a preview or a test copy of a digest, so there is nobody to unsubscribe and nothing changed.",
            "In each reader's copy this link is their own: one click unsubscribes them.",
        ],
    )
    .render(state, StatusCode::OK)
}

fn not_found(state: &AppState) -> anyhow::Result<HttpResponse> {
    let mut page = Page::new(
        "We do not know this link",
        &[
            "The link may be incomplete. Copy the whole link from the mail into your browser, or use the unsubscribe link of a more recent mail.",
        ],
    );
    page.show_subscribe_link = true;
    page.render(state, StatusCode::NOT_FOUND)
}
