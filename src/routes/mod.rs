//! HTTP handlers. Each parses its input into domain types and calls one function below;
//! nothing under `routes/` holds SQL or talks to SMTP.

pub mod admin;
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

/// The client address for rate limits and the consent ledger.
pub fn client_ip(request: &HttpRequest, state: &AppState) -> String {
    let info = request.connection_info();
    let address = if state.settings.server.trust_forwarded_for {
        info.realip_remote_addr()
    } else {
        info.peer_addr()
    };
    address.unwrap_or("unknown").to_string()
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
