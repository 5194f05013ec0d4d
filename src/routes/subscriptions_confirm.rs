//! `GET /subscriptions/confirm?token=…`: the link in the confirmation mail.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::pages::Page;
use super::{PageError, event_context};
use crate::db::subscribers::{ConfirmOutcome, confirm_subscriber};
use crate::domain::Token;
use crate::startup::AppState;

#[derive(Deserialize)]
pub struct TokenQuery {
    pub token: Option<String>,
}

pub async fn confirm(
    request: HttpRequest,
    query: web::Query<TokenQuery>,
    state: web::Data<AppState>,
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
    let response = match outcome {
        ConfirmOutcome::Confirmed => {
            tracing::info!("subscription confirmed");
            state.wake_worker.notify_one();
            Page::new(
                "You are subscribed",
                &[&format!("Thank you for confirming. You will get the latest news, research and articles from {site}."),
                  "Every mail we send has a link to unsubscribe with one click."],
            )
            .render(&state, StatusCode::OK)?
        }
        ConfirmOutcome::AlreadyConfirmed => Page::new(
            "You are already subscribed",
            &["This address was already confirmed. There is nothing more to do."],
        )
        .render(&state, StatusCode::OK)?,
        ConfirmOutcome::Expired { email } => {
            let mut page = Page::new(
                "This link has expired",
                &[
                    "Confirmation links only work for a limited time, and each works once. We can send you a new one.",
                ],
            );
            page.resend_email = Some(email);
            page.render(&state, StatusCode::GONE)?
        }
        ConfirmOutcome::NotFound => not_found(&state)?,
    };
    Ok(response)
}

fn not_found(state: &AppState) -> anyhow::Result<HttpResponse> {
    let mut page = Page::new(
        "We do not know this link",
        &[
            "The link may be incomplete: some mail programs break long links. Try copying the whole link from the mail into your browser, or sign up again to get a new one.",
        ],
    );
    page.show_subscribe_link = true;
    page.render(state, StatusCode::NOT_FOUND)
}
