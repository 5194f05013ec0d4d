//! `GET /admin/api/subscribers?status=&page=` and `DELETE /admin/api/subscribers/{id}`.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::Staff;
use crate::db::subscribers::{erase_subscriber as erase, list_subscribers as load};
use crate::domain::{SubscriberStatus, mask_address};
use crate::routes::{ApiError, event_context};
use crate::startup::AppState;

#[derive(Debug, Deserialize)]
pub struct SubscriberQuery {
    status: Option<String>,
    page: Option<i64>,
    per_page: Option<i64>,
}

pub async fn list_subscribers(
    _staff: Staff,
    query: web::Query<SubscriberQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let status = match query.status.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(text) => Some(SubscriberStatus::parse(text).ok_or_else(|| {
            ApiError::Invalid("status must be pending, confirmed, unsubscribed or bounced".into())
        })?),
    };
    let page = query.page.unwrap_or(1).max(1);
    let per_page = query.per_page.unwrap_or(50).clamp(1, 500);
    let (subscribers, total) = state
        .db
        .run(move |conn| Ok(load(conn, status, page, per_page)?))
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "subscribers": subscribers,
        "page": page,
        "per_page": per_page,
        "total": total,
    })))
}

pub async fn erase_subscriber(
    staff: Staff,
    request: HttpRequest,
    id: web::Path<i64>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let context = event_context(&request, &state, "staff-api");
    let erased = state.db.run(move |conn| erase(conn, id, &context)).await?;
    match erased {
        Some(email) => {
            tracing::info!(staff = %staff.name, subscriber = %mask_address(&email), "subscriber erased");
            Ok(HttpResponse::NoContent().finish())
        }
        None => Err(ApiError::NotFound(format!(
            "subscriber {id} does not exist"
        ))),
    }
}
