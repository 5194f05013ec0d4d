//! The staff API under `/admin/api`: every request carries `Authorization: Bearer <token>`.

mod articles;
mod automations;
mod digests;

mod feeds_import;
mod subscribers;

use std::future::Future;
use std::pin::Pin;

use actix_web::http::header::AUTHORIZATION;
use actix_web::{FromRequest, HttpRequest, web};
use serde::Deserialize;

pub use automations::AutomationView;

use super::ApiError;
use crate::db::staff_tokens::authenticate_staff_token;
use crate::domain::hash_token;
use crate::startup::AppState;

/// Routes of the staff API; mounted under `/admin/api`.
pub fn configure(config: &mut web::ServiceConfig) {
    config
        .route("/articles", web::post().to(articles::create_article))
        .route("/articles", web::get().to(articles::list_articles))
        .route("/feeds/import", web::post().to(feeds_import::import_feed))
        .route(
            "/automations",
            web::post().to(automations::create_automation),
        )
        .route("/automations", web::get().to(automations::list))
        .route("/automations/{id}", web::delete().to(automations::remove))
        .route(
            "/automations/{id}/run",
            web::post().to(automations::run_now),
        )
        .route("/digests", web::post().to(digests::create_digest))
        .route("/digests", web::get().to(digests::list_digests))
        .route("/digests/{id}", web::get().to(digests::digest_status))
        .route(
            "/digests/{id}/preview",
            web::get().to(digests::preview_digest),
        )
        .route(
            "/digests/{id}/test",
            web::post().to(digests::send_test_digest),
        )
        .route("/digests/{id}/send", web::post().to(digests::send_digest))
        .route(
            "/digests/{id}/schedule",
            web::post().to(digests::schedule_digest),
        )
        .route("/digests/{id}/pause", web::post().to(digests::pause_digest))
        .route(
            "/digests/{id}/resume",
            web::post().to(digests::resume_digest),
        )
        .route(
            "/digests/{id}/cancel",
            web::post().to(digests::cancel_digest),
        )
        .route("/subscribers", web::get().to(subscribers::list_subscribers))
        .route(
            "/subscribers/{id}/unsubscribe",
            web::post().to(subscribers::unsubscribe_subscriber),
        )
        .route(
            "/subscribers/{id}",
            web::delete().to(subscribers::erase_subscriber),
        );
}

/// A request made with a valid staff token; the token's name is kept for the logs.
pub struct Staff {
    pub name: String,
}

impl FromRequest for Staff {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Staff, ApiError>>>>;

    fn from_request(request: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let state = request.app_data::<web::Data<AppState>>().cloned();
        let presented = request
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|t| hash_token(t.trim()));
        Box::pin(async move {
            let (Some(state), Some(hash)) = (state, presented) else {
                return Err(ApiError::Unauthorized);
            };
            let name = state
                .db
                .run(move |conn| Ok(authenticate_staff_token(conn, &hash)?))
                .await?;
            name.map(|name| Staff { name })
                .ok_or(ApiError::Unauthorized)
        })
    }
}

/// The highest page a listing serves; past it the offset would overflow.
const MAX_PAGE: i64 = 1_000_000;

/// `?page=` (from 1) for listings.
#[derive(Debug, Deserialize)]
pub struct PageQuery {
    pub page: Option<i64>,
    pub per_page: Option<i64>,
}

impl PageQuery {
    pub fn page(&self) -> Result<i64, ApiError> {
        match self.page.unwrap_or(1) {
            page @ 1..=MAX_PAGE => Ok(page),
            _ => Err(ApiError::BadRequest(format!(
                "page must be a number from 1 to {MAX_PAGE}"
            ))),
        }
    }

    pub fn per_page(&self) -> i64 {
        self.per_page.unwrap_or(50).clamp(1, 500)
    }
}

/// A query string that does not parse (`?page=abc`) gets the API's error body.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default()
        .error_handler(|error, _| ApiError::BadRequest(format!("the query string: {error}")).into())
}

/// Bad or oversized JSON gets the API's error body, not actix's plain text.
pub fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .error_handler(move |error, _| {
            use actix_web::error::JsonPayloadError;
            match error {
                JsonPayloadError::Overflow { .. }
                | JsonPayloadError::OverflowKnownLength { .. } => ApiError::TooLarge(limit).into(),
                JsonPayloadError::ContentType => {
                    ApiError::UnsupportedMediaType("send application/json".into()).into()
                }
                JsonPayloadError::Payload(e) if crate::routes::is_read_timeout(&e) => {
                    ApiError::BodyTimeout.into()
                }
                other => ApiError::Invalid(format!(
                    "the body is not valid JSON for this request: {other}"
                ))
                .into(),
            }
        })
}
