//! The link in the confirmation mail. `GET /subscriptions/confirm?token=…` shows one button and
//! changes nothing: mail scanners and link previews open every link in a mail, and a GET that
//! confirmed would let them subscribe anyone. `POST` to the same URL (the button) confirms.
//! An expired link's page offers `POST /subscriptions/confirm/resend?token=…`, which sends a
//! new link to the address the old one was for, without the page ever showing that address.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::pages::{Page, render};
use super::{PageError, client_ip, event_context};
use crate::db::subscribers::{
    ConfirmOutcome, LinkCheck, Signup, check_confirmation_link, confirm_subscriber,
    find_subscriber_by_confirmation_token,
};
use crate::domain::{LinkLimit, SubscriberEmail, Token, mask_address};
use crate::startup::AppState;

#[derive(Deserialize)]
pub struct TokenQuery {
    pub token: Option<String>,
}

#[derive(Serialize)]
struct ConfirmPage {
    title: String,
    email: String,
    action: String,
}

/// `GET`: the page with the button.
pub async fn confirm_page(
    query: web::Query<TokenQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let Some(token) = query.token.as_deref().and_then(Token::parse) else {
        return Ok(not_found(&state)?);
    };
    let hash = token.hash();
    let check = state
        .db
        .run(move |conn| Ok(check_confirmation_link(conn, &hash)?))
        .await?;
    let response = match check {
        LinkCheck::Confirmable { email } => render(
            &state,
            "confirm",
            StatusCode::OK,
            ConfirmPage {
                title: state.templates.texts().text("confirm.title", &[]),
                email: mask_address(&email),
                action: link(&state, "/subscriptions/confirm", &token),
            },
        )?,
        LinkCheck::AlreadyConfirmed => already_confirmed(&state)?,
        LinkCheck::Expired { email } => expired(&state, &email, &token)?,
        LinkCheck::NotFound => not_found(&state)?,
    };
    Ok(response)
}

/// `POST`: confirms, once, however often and however concurrently it is pressed.
pub async fn confirm(
    request: HttpRequest,
    query: web::Query<TokenQuery>,
    state: web::Data<AppState>,
    _form: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let Some(token) = query.token.as_deref().and_then(Token::parse) else {
        return Ok(not_found(&state)?);
    };
    let context = event_context(&request, &state, "confirmation-link");
    let welcome = state.settings.signup.welcome_email;
    let hash = token.hash();
    let outcome = state
        .db
        .run(move |conn| confirm_subscriber(conn, &hash, &context, welcome))
        .await?;
    let site = &state.settings.site.name;
    let t = state.templates.texts();
    let response = match outcome {
        ConfirmOutcome::Confirmed => {
            tracing::info!("subscription confirmed");
            state.metrics.confirmed();
            state.wake_worker.notify_one();
            Page::new(
                &t.text("confirm.done_title", &[]),
                &[
                    &t.text("confirm.done_thanks", &[("site", site)]),
                    &t.text("confirm.done_unsubscribe", &[]),
                ],
            )
            .render(&state, StatusCode::OK)?
        }
        ConfirmOutcome::AlreadyConfirmed => already_confirmed(&state)?,
        ConfirmOutcome::Expired { email } => expired(&state, &email, &token)?,
        ConfirmOutcome::NotFound => not_found(&state)?,
    };
    Ok(response)
}

/// `POST /subscriptions/confirm/resend`: a new link for the address an expired one was for. It
/// goes through the same queue, limits and ledger as a signup from the form.
pub async fn resend(
    request: HttpRequest,
    query: web::Query<TokenQuery>,
    state: web::Data<AppState>,
    _form: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let Some(token) = query.token.as_deref().and_then(Token::parse) else {
        return Ok(not_found(&state)?);
    };
    let ip = client_ip(&request, &state);
    if let Err(wait) = state.signup_limiter.check(&ip) {
        tracing::info!(client = %ip, "new confirmation link rate-limited");
        let t = state.templates.texts();
        let seconds = wait.to_string();
        let mut response = Page::new(
            &t.text("confirm.wait_title", &[]),
            &[&t.text("confirm.too_many", &[("seconds", &seconds)])],
        )
        .render(&state, StatusCode::TOO_MANY_REQUESTS)?;
        response
            .headers_mut()
            .insert(actix_web::http::header::RETRY_AFTER, wait.into());
        return Ok(response);
    }
    let hash = token.hash();
    let owner = state
        .db
        .run(move |conn| Ok(find_subscriber_by_confirmation_token(conn, &hash)?))
        .await?;
    let Some(email) = owner.and_then(|s| SubscriberEmail::parse(&s.email).ok()) else {
        return Ok(not_found(&state)?);
    };
    let masked = email.masked();
    let outcome = state
        .signups
        .submit(Signup {
            email,
            name: None,
            context: event_context(&request, &state, "expired-link"),
            links: LinkLimit::per_hour(state.settings.signup.max_links_per_hour),
        })
        .await
        .map_err(PageError::from)?
        .outcome;
    tracing::info!(subscriber = %masked, ?outcome, "new confirmation link asked for");
    state.wake_worker.notify_one();
    Ok(HttpResponse::SeeOther()
        .insert_header((
            "Location",
            format!("{}/subscribe/thanks", state.settings.base_url()),
        ))
        .finish())
}

fn link(state: &AppState, path: &str, token: &Token) -> String {
    format!(
        "{}{path}?token={}",
        state.settings.base_url(),
        token.as_str()
    )
}

fn already_confirmed(state: &AppState) -> anyhow::Result<HttpResponse> {
    let t = state.templates.texts();
    Page::new(
        &t.text("confirm.already_title", &[]),
        &[&t.text("confirm.already_text", &[])],
    )
    .render(state, StatusCode::OK)
}

fn expired(state: &AppState, email: &str, token: &Token) -> anyhow::Result<HttpResponse> {
    let t = state.templates.texts();
    let masked = mask_address(email);
    let mut page = Page::new(
        &t.text("confirm.expired_title", &[]),
        &[&t.text("confirm.expired_text", &[("email", &masked)])],
    );
    page.resend_url = Some(link(state, "/subscriptions/confirm/resend", token));
    page.render(state, StatusCode::GONE)
}

fn not_found(state: &AppState) -> anyhow::Result<HttpResponse> {
    let t = state.templates.texts();
    let mut page = Page::new(
        &t.text("confirm.unknown_title", &[]),
        &[&t.text("confirm.unknown_text", &[])],
    );
    page.show_subscribe_link = true;
    page.render(state, StatusCode::NOT_FOUND)
}
