//! HTTP handlers. Each parses its input into domain types and calls one function below;
//! nothing under `routes/` holds SQL or talks to SMTP.

pub mod admin;
mod client_ip;
mod errors;
mod health;
mod pages;
mod subscribe;
mod subscriptions;
mod subscriptions_confirm;
mod unsubscribe;

pub use errors::{ApiError, PageError};
pub use health::health;
pub use pages::Page;
pub use subscribe::{subscribe_page, thanks_page};
pub use subscriptions::subscribe;
pub use subscriptions_confirm::confirm;
pub use unsubscribe::{unsubscribe, unsubscribe_page};

use actix_web::HttpRequest;

use crate::db::events::EventContext;
use crate::startup::AppState;

pub use client_ip::loopback as loopback_proxies;

/// The client address for rate limits and the consent ledger (see [`client_ip`]).
pub fn client_ip(request: &HttpRequest, state: &AppState) -> String {
    client_ip::client_ip(request, &state.settings.server.trusted_proxies)
}

/// The consent-ledger context of a request.
pub fn event_context(request: &HttpRequest, state: &AppState, source: &str) -> EventContext {
    let user_agent = request
        .headers()
        .get(actix_web::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| ua.chars().take(512).collect());
    EventContext {
        ip: Some(client_ip(request, state)),
        user_agent,
        source: source.to_string(),
        detail: None,
    }
}
