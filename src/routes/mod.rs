//! HTTP handlers. Each parses its input into domain types and calls one function below;
//! nothing under `routes/` holds SQL or talks to SMTP.

pub mod admin;
mod archive;
mod client_ip;
mod error_pages;
mod errors;
mod health;
mod metrics;
mod pages;
pub mod staff;
mod subscribe;
mod subscriptions;
mod subscriptions_confirm;
mod unsubscribe;

pub use archive::{archive_digest, archive_feed, archive_index};
pub use error_pages::{error_pages, front_door, not_found};
pub use errors::{ApiError, PageError};
pub use health::health;
pub use metrics::metrics;
pub use pages::{Page, check_pages};
pub use subscribe::{subscribe_page, thanks_page};
pub use subscriptions::subscribe;
pub use subscriptions_confirm::{confirm, confirm_page, resend as resend_confirmation};
pub use unsubscribe::{unsubscribe, unsubscribe_page};

use actix_web::HttpRequest;

use crate::db::events::EventContext;
use crate::startup::AppState;

pub use client_ip::loopback as loopback_proxies;

/// How long a request body may take to arrive, in all.
pub const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The request body, cut off with an error when it has not fully arrived within
/// [`BODY_READ_TIMEOUT`] (a client that sends a byte a minute holds no connection for long).
pub fn with_read_timeout(body: actix_web::dev::Payload) -> actix_web::dev::Payload {
    use actix_web::error::PayloadError;
    use futures_util::StreamExt;
    let deadline = tokio::time::Instant::now() + BODY_READ_TIMEOUT;
    let timed = futures_util::stream::unfold(Some(body), move |body| async move {
        let mut body = body?;
        match tokio::time::timeout_at(deadline, body.next()).await {
            Ok(Some(chunk)) => Some((chunk, Some(body))),
            Ok(None) => None,
            Err(_) => {
                let late = std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the request body did not arrive in time",
                );
                Some((Err(PayloadError::Io(late)), None))
            }
        }
    });
    actix_web::dev::Payload::from(
        // Fused: a reader that polls again after the end (multipart does) gets the end again.
        Box::pin(timed.fuse()) as std::pin::Pin<Box<dyn futures_util::Stream<Item = _>>>,
    )
}

/// Whether reading a body failed because it came too slowly.
pub fn is_read_timeout(error: &actix_web::error::PayloadError) -> bool {
    matches!(error, actix_web::error::PayloadError::Io(e) if e.kind() == std::io::ErrorKind::TimedOut)
}

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
