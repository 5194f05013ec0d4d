//! `GET /metrics`: Prometheus scrapes it (see [`crate::metrics`]). Not there unless
//! `metrics.enabled`; with `metrics.token` set, only for `Authorization: Bearer <token>`.

use actix_web::http::header::AUTHORIZATION;
use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::ExposeSecret;

use super::ApiError;
use crate::db::bounces::metrics_snapshot;
use crate::startup::AppState;

pub async fn metrics(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let settings = &state.settings.metrics;
    if !settings.enabled {
        return Err(ApiError::NotFound("no such path".into()));
    }
    let token = settings.token.expose_secret();
    if !token.is_empty() {
        let presented = request
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        // Compared by hash: the time taken says nothing about the token.
        if crate::domain::hash_token(presented.trim()) != crate::domain::hash_token(token) {
            return Err(ApiError::Unauthorized);
        }
    }
    let snapshot = state.db.run(|conn| Ok(metrics_snapshot(conn)?)).await?;
    let text = state.metrics.render(&snapshot)?;
    Ok(HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .body(text))
}
