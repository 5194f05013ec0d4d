//! `POST /admin/api/feeds/import {url}`: the site's RSS or Atom items become articles.

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::Staff;
use crate::feeds::{FeedError, FetchPolicy, import_feed as import};
use crate::routes::ApiError;
use crate::startup::AppState;

#[derive(Debug, Deserialize)]
pub struct FeedBody {
    url: String,
}

pub async fn import_feed(
    staff: Staff,
    body: web::Json<FeedBody>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let url = body.url.trim();
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(ApiError::Invalid(
            "url must be an http(s) URL of an RSS or Atom feed".into(),
        ));
    }
    let policy = FetchPolicy::new(state.settings.feeds.allow_private_networks);
    let (imported, skipped) = import(&state.db, url, &policy).await.map_err(|e| match e {
        FeedError::Fetch(_) => ApiError::BadGateway(e.to_string()),
        FeedError::Refused(_) | FeedError::Parse(_) => ApiError::Invalid(e.to_string()),
        FeedError::Unexpected(e) => ApiError::Unexpected(e),
    })?;
    tracing::info!(staff = %staff.name, imported, skipped, "feed imported");
    Ok(HttpResponse::Ok().json(serde_json::json!({ "imported": imported, "skipped": skipped })))
}
