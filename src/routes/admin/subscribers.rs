//! `GET /admin/api/subscribers?status=&email=&page=`, `POST /admin/api/subscribers/{id}/unsubscribe`
//! and `DELETE /admin/api/subscribers/{id}`.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::{PageQuery, Staff};
use crate::db::subscribers::{
    SubscriberFilter, erase_subscriber as erase, list_subscribers as load, unsubscribe_by_staff,
};
use crate::domain::{SubscriberStatus, mask_address};
use crate::routes::{ApiError, event_context};
use crate::startup::AppState;

#[derive(Debug, Deserialize)]
pub struct ListFilter {
    status: Option<String>,
    /// One address, in any letter case.
    email: Option<String>,
}

pub async fn list_subscribers(
    _staff: Staff,
    filter: web::Query<ListFilter>,
    paging: web::Query<PageQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let filter = SubscriberFilter {
        status: SubscriberStatus::parse_filter(filter.status.as_deref())
            .map_err(ApiError::Invalid)?,
        email: filter
            .email
            .as_deref()
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(str::to_string),
    };
    let (page, per_page) = (paging.page()?, paging.per_page());
    let (subscribers, total) = state
        .db
        .run(move |conn| Ok(load(conn, &filter, page, per_page)?))
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "subscribers": subscribers,
        "page": page,
        "per_page": per_page,
        "total": total,
    })))
}

pub async fn unsubscribe_subscriber(
    staff: Staff,
    request: HttpRequest,
    id: web::Path<i64>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let context = event_context(&request, &state, "staff-api")
        .with_detail(format!("by staff token {:?}", staff.name));
    let done = state
        .db
        .run(move |conn| unsubscribe_by_staff(conn, id, &context))
        .await?;
    let subscriber =
        done.ok_or_else(|| ApiError::NotFound(format!("subscriber {id} does not exist")))?;
    tracing::info!(staff = %staff.name, subscriber = %mask_address(&subscriber.email), "subscriber unsubscribed by staff");
    Ok(HttpResponse::Ok().json(subscriber))
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
