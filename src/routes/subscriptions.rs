//! `POST /subscriptions`: a signup from the site's form (urlencoded) or the JSON API.
//! The answer is the same whether the address is new, pending or already confirmed, so it
//! tells nobody who is subscribed; the mail itself goes through the queue.

use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use futures_util::StreamExt;
use serde::Deserialize;

use super::errors::UNAVAILABLE_RETRY_AFTER;
use super::pages::render;
use super::subscribe::SignupFormPage;
use super::{ApiError, client_ip, event_context};
use crate::db::subscribers::{Signup, SignupOutcome};
use crate::domain::{LinkLimit, SubscriberEmail, SubscriberName};
use crate::startup::AppState;

#[derive(Debug, Deserialize)]
pub struct SignupForm {
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    name: Option<String>,
    /// The honeypot: hidden from people, filled in by bots.
    #[serde(default)]
    website: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Form,
}

pub async fn subscribe(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let format = request_format(&request)?;
    let ip = client_ip(&request, &state);
    if let Err(wait) = state.signup_limiter.check(&ip) {
        tracing::info!(client = %ip, "signup rate-limited");
        return match format {
            Format::Json => Err(ApiError::RateLimited(wait)),
            Format::Form => {
                let mut page = SignupFormPage::new(&state);
                let seconds = wait.to_string();
                page.error = Some(
                    state
                        .templates
                        .texts()
                        .text("subscribe.too_many", &[("seconds", &seconds)]),
                );
                let mut response =
                    render(&state, "subscribe", StatusCode::TOO_MANY_REQUESTS, page)?;
                response
                    .headers_mut()
                    .insert(actix_web::http::header::RETRY_AFTER, wait.into());
                Ok(response)
            }
        };
    }
    let body = read_body(&request, payload, state.settings.server.max_body_bytes).await?;
    let form: SignupForm = match format {
        Format::Json => serde_json::from_slice(&body).map_err(|e| {
            ApiError::Invalid(format!("the body is not valid JSON for a signup: {e}"))
        })?,
        Format::Form => serde_urlencoded::from_bytes(&body)
            .map_err(|e| ApiError::Invalid(format!("the form could not be read: {e}")))?,
    };

    let email = match SubscriberEmail::parse(form.email.as_deref().unwrap_or_default()) {
        Ok(email) => email,
        Err(message) => return invalid(&state, format, &form, "subscribe.bad_email", message),
    };
    let name = match SubscriberName::parse(form.name.as_deref()) {
        Ok(name) => name,
        Err(message) => return invalid(&state, format, &form, "subscribe.bad_name", message),
    };
    if form
        .website
        .as_deref()
        .is_some_and(|w| !w.trim().is_empty())
    {
        tracing::info!(client = %ip, "honeypot filled in: signup ignored");
        return Ok(accepted(&state, format));
    }

    let context = event_context(
        &request,
        &state,
        if format == Format::Json {
            "api"
        } else {
            "form"
        },
    );
    let masked = email.masked();
    let submitted = state
        .signups
        .submit(Signup {
            email,
            name,
            context,
            links: LinkLimit::per_hour(state.settings.signup.max_links_per_hour),
        })
        .await;
    let outcome = match submitted.map_err(ApiError::from) {
        Ok(signed) => signed.outcome,
        // A person gets the form back, filled in, with what to do; the API gets JSON.
        Err(error) if format == Format::Form => {
            let unavailable = matches!(error, ApiError::Unavailable(_));
            let cause = match &error {
                ApiError::Unavailable(e) | ApiError::Unexpected(e) => format!("{e:#}"),
                other => other.to_string(),
            };
            let key = if unavailable {
                tracing::warn!(subscriber = %masked, error = cause, "signup not saved");
                "subscribe.unavailable"
            } else {
                tracing::error!(subscriber = %masked, error = cause, "signup failed");
                "subscribe.failed"
            };
            let message = state.templates.texts().text(key, &[]);
            let mut page = form_again(&state, &form, error.status_code(), &message)?;
            if unavailable {
                page.headers_mut().insert(
                    actix_web::http::header::RETRY_AFTER,
                    UNAVAILABLE_RETRY_AFTER.into(),
                );
            }
            return Ok(page);
        }
        Err(error) => return Err(error),
    };
    tracing::info!(subscriber = %masked, ?outcome, "signup");
    if outcome == SignupOutcome::ConfirmationQueued {
        state.metrics.signed_up();
        state.wake_worker.notify_one();
    }
    Ok(accepted(&state, format))
}

fn request_format(request: &HttpRequest) -> Result<Format, ApiError> {
    let content_type = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/json" => Ok(Format::Json),
        "application/x-www-form-urlencoded" => Ok(Format::Form),
        _ => Err(ApiError::UnsupportedMediaType(
            "send application/json or application/x-www-form-urlencoded".into(),
        )),
    }
}

/// Reads the body, refusing more than `limit` bytes without reading them all.
async fn read_body(
    request: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::BytesMut, ApiError> {
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(ApiError::TooLarge(limit));
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| match super::is_read_timeout(&e) {
            true => ApiError::BodyTimeout,
            false => ApiError::Invalid(format!("the body could not be read: {e}")),
        })?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::TooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn accepted(state: &AppState, format: Format) -> HttpResponse {
    match format {
        Format::Json => HttpResponse::Accepted().json(serde_json::json!({ "status": "pending" })),
        Format::Form => HttpResponse::SeeOther()
            .insert_header((
                "Location",
                format!("{}/subscribe/thanks", state.settings.base_url()),
            ))
            .finish(),
    }
}

/// A JSON client gets 422 with the message; a person gets the form back, filled in, with the
/// text of `key` in the site's language (the message is its `{detail}`).
fn invalid(
    state: &AppState,
    format: Format,
    form: &SignupForm,
    key: &str,
    message: String,
) -> Result<HttpResponse, ApiError> {
    match format {
        Format::Json => Err(ApiError::Invalid(message)),
        Format::Form => {
            let detail = capitalize(&message);
            let text = state.templates.texts().text(key, &[("detail", &detail)]);
            form_again(state, form, StatusCode::UNPROCESSABLE_ENTITY, &text)
        }
    }
}

/// The signup form again, filled in with what the visitor typed, and the error above it.
fn form_again(
    state: &AppState,
    form: &SignupForm,
    status: StatusCode,
    error: &str,
) -> Result<HttpResponse, ApiError> {
    let mut page = SignupFormPage::new(state);
    page.email = printable(form.email.as_deref(), 254);
    page.name = printable(form.name.as_deref(), 100);
    page.error = Some(error.to_string());
    Ok(render(state, "subscribe", status, page)?)
}

/// What the visitor typed, for filling the form again: without control characters, bounded.
fn printable(value: Option<&str>, max: usize) -> String {
    value
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .take(max)
        .collect()
}

fn capitalize(message: &str) -> String {
    let mut chars = message.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect::<String>() + ".",
        None => String::new(),
    }
}
