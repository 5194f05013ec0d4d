//! Digests for staff: create a draft, preview it, send a test, send it, watch it finish.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};

use crate::db::articles::Article;

use super::Staff;
use crate::db::digests::{
    CreateDigestError, Digest, SendStart, create_digest as create, digest_progress, find_digest,
    list_digests as load_digests, queue_digest,
};
use crate::digests::{PreviewFormat, TestSendError, parse_digest, preview, send_test};
use crate::routes::ApiError;
use crate::startup::AppState;

/// The new draft, its own fields first, then its articles.
#[derive(Serialize)]
struct CreatedDigest {
    #[serde(flatten)]
    digest: Digest,
    articles: Vec<Article>,
}

#[derive(Debug, Deserialize)]
pub struct DigestBody {
    subject: String,
    #[serde(default)]
    intro: String,
    article_ids: Option<Vec<i64>>,
    since: Option<String>,
}

pub async fn create_digest(
    staff: Staff,
    body: web::Json<DigestBody>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let choice = parse_digest(&body.subject, body.article_ids, body.since.as_deref())
        .map_err(ApiError::Invalid)?;
    let (subject, intro) = (body.subject.trim().to_string(), body.intro);
    let created = state
        .db
        .run(move |conn| Ok(create(conn, &subject, &intro, &choice)))
        .await?
        .map_err(|e| match e {
            CreateDigestError::Invalid(message) => ApiError::Invalid(message),
            CreateDigestError::Unexpected(e) => ApiError::Unexpected(e),
        })?;
    let (digest, articles) = created;
    tracing::info!(staff = %staff.name, digest = digest.id, articles = articles.len(), "digest created");
    Ok(HttpResponse::Created().json(CreatedDigest { digest, articles }))
}

pub async fn list_digests(
    _staff: Staff,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let digests = state.db.run(|conn| Ok(load_digests(conn)?)).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "digests": digests })))
}

pub async fn digest_status(
    _staff: Staff,
    id: web::Path<i64>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let progress = state
        .db
        .run(move |conn| Ok(digest_progress(conn, id)?))
        .await?;
    progress
        .map(|p| HttpResponse::Ok().json(p))
        .ok_or_else(|| ApiError::NotFound(format!("digest {id} does not exist")))
}

async fn require_digest(state: &AppState, id: i64) -> Result<(), ApiError> {
    let found = state.db.run(move |conn| Ok(find_digest(conn, id)?)).await?;
    found
        .map(|_| ())
        .ok_or_else(|| ApiError::NotFound(format!("digest {id} does not exist")))
}

#[derive(Debug, Deserialize)]
pub struct PreviewQuery {
    format: Option<String>,
}

pub async fn preview_digest(
    _staff: Staff,
    id: web::Path<i64>,
    query: web::Query<PreviewQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    require_digest(&state, id).await?;
    let (format, content_type) = match query.format.as_deref() {
        None | Some("html") => (PreviewFormat::Html, "text/html; charset=utf-8"),
        Some("text") => (PreviewFormat::Text, "text/plain; charset=utf-8"),
        Some(_) => return Err(ApiError::Invalid("format must be html or text".into())),
    };
    let body = preview(&state.db, &state.composer, id, format).await?;
    Ok(HttpResponse::Ok().content_type(content_type).body(body))
}

#[derive(Debug, Deserialize)]
pub struct TestBody {
    email: String,
}

pub async fn send_test_digest(
    staff: Staff,
    id: web::Path<i64>,
    body: web::Json<TestBody>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    require_digest(&state, id).await?;
    send_test(&state.db, &state.composer, &state.mailer, id, &body.email)
        .await
        .map_err(|e| match e {
            TestSendError::InvalidAddress(message) => ApiError::Invalid(message),
            TestSendError::Refused(_) => ApiError::BadGateway(e.to_string()),
            TestSendError::Unexpected(e) => ApiError::Unexpected(e),
        })?;
    tracing::info!(staff = %staff.name, digest = id, "test digest sent");
    Ok(
        HttpResponse::Ok()
            .json(serde_json::json!({ "status": "sent", "email": body.email.trim() })),
    )
}

pub async fn send_digest(
    staff: Staff,
    id: web::Path<i64>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let started = state.db.run(move |conn| queue_digest(conn, id)).await?;
    match started {
        SendStart::Queued(queued) => {
            tracing::info!(staff = %staff.name, digest = id, queued, "digest send started");
            state.wake_worker.notify_one();
            Ok(HttpResponse::Accepted()
                .json(serde_json::json!({ "id": id, "status": "sending", "queued": queued })))
        }
        SendStart::AlreadyStarted => {
            let progress = state
                .db
                .run(move |conn| Ok(digest_progress(conn, id)?))
                .await?;
            Ok(HttpResponse::Ok().json(serde_json::json!({
                "id": id,
                "status": progress.map(|p| p.status).unwrap_or_default(),
                "queued": 0,
                "message": "this digest was sent already; nothing more was queued",
            })))
        }
        SendStart::NotFound => Err(ApiError::NotFound(format!("digest {id} does not exist"))),
    }
}
