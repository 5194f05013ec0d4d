//! `GET /admin/api/subscribers?status=&page=` and `DELETE /admin/api/subscribers/{id}`.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::{PageQuery, Staff};
use crate::db::subscribers::{erase_subscriber as erase, list_subscribers as load};
use crate::domain::{SubscriberStatus, mask_address};
use crate::routes::{ApiError, event_context};
use crate::startup::AppState;

#[derive(Debug, Deserialize)]
pub struct StatusFilter {
    status: Option<String>,
}

pub async fn list_subscribers(
    _staff: Staff,
    filter: web::Query<StatusFilter>,
    paging: web::Query<PageQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let status =
        SubscriberStatus::parse_filter(filter.status.as_deref()).map_err(ApiError::Invalid)?;
    let (page, per_page) = (paging.page(), paging.per_page());
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
