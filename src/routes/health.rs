//! `GET /health`: the process is up and the database answers.

use actix_web::{HttpResponse, web};
use diesel::connection::SimpleConnection;

use crate::startup::AppState;

pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    match state
        .db
        .run(|conn| Ok(conn.batch_execute("SELECT 1")?))
        .await
    {
        Ok(()) => HttpResponse::Ok().json(serde_json::json!({ "status": "ok" })),
        Err(e) => {
            tracing::error!(
                error = format!("{e:#}"),
                "health check: database unreachable"
            );
            HttpResponse::ServiceUnavailable().json(
                serde_json::json!({ "status": "unavailable", "error": "database unreachable" }),
            )
        }
    }
}
