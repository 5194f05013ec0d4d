//! Digests for staff: create a draft, preview it, send a test, send it, watch it finish, and
//! pause, resume or cancel the send.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};

use crate::db::articles::Article;

use super::Staff;
use crate::db::digests::{
    CreateDigestError, Digest, NewDigest, ScheduleOutcome, SendStart, Transition,
    cancel_digest as cancel, create_digest as create, digest_progress, find_digest,
    list_digests as load_digests, pause_digest as pause, queue_digest, resume_digest as resume,
    schedule_digest as schedule,
};
use crate::digests::{
    PreviewFormat, TestSendError, parse_digest, parse_schedule_time, preview, send_test,
};
use crate::domain::DigestStatus;
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
    /// Shown in the public archive once sent; `false` keeps it out.
    #[serde(default = "shown_in_archive")]
    archive: bool,
}

fn shown_in_archive() -> bool {
    true
}

pub async fn create_digest(
    staff: Staff,
    body: web::Json<DigestBody>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let choice = parse_digest(&body.subject, body.article_ids, body.since.as_deref())
        .map_err(ApiError::Invalid)?;
    let new = NewDigest {
        subject: body.subject.trim().to_string(),
        intro: body.intro,
        choice,
        archive: body.archive,
    };
    let created = state
        .db
        .run(move |conn| Ok(create(conn, &new)))
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
    progress_answer(&state, id).await
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
    let mut response = HttpResponse::Ok();
    response.content_type(content_type);
    // The preview stays a reader's copy; what stands in the way of sending it comes beside it.
    if let Some(why) = state.settings.site.not_ready_for_digests() {
        response.insert_header(("Newsletter-Warning", format!("not ready to send: {why}")));
    }
    Ok(response.body(body))
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
    if let Some(why) = state.settings.site.not_ready_for_digests() {
        return Err(ApiError::Conflict(format!(
            "digest {id} was not sent: {why}"
        )));
    }
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

#[derive(Debug, Deserialize)]
pub struct ScheduleBody {
    at: String,
}

/// `POST /admin/api/digests/{id}/schedule {at}`: the worker starts it then. A time in the past
/// is refused (422), as is a digest that could not go out (409, no postal address).
pub async fn schedule_digest(
    staff: Staff,
    id: web::Path<i64>,
    body: web::Json<ScheduleBody>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let at = parse_schedule_time(&body.at, state.settings.site.tz(), crate::db::now())
        .map_err(ApiError::Invalid)?;
    if let Some(why) = state.settings.site.not_ready_for_digests() {
        return Err(ApiError::Conflict(format!(
            "digest {id} was not scheduled: {why}"
        )));
    }
    match state.db.run(move |conn| schedule(conn, id, at)).await? {
        ScheduleOutcome::Scheduled => {
            tracing::info!(staff = %staff.name, digest = id, at = %at, "digest scheduled");
        }
        ScheduleOutcome::NotFrom(status) => {
            return Err(ApiError::Conflict(format!(
                "digest {id} is {status}; only a draft, a scheduled digest or one that missed \
                 its time can be scheduled"
            )));
        }
        ScheduleOutcome::NotFound => {
            return Err(ApiError::NotFound(format!("digest {id} does not exist")));
        }
    }
    progress_answer(&state, id).await
}

/// The digest's status and counts, as `GET /digests/{id}` answers them.
async fn progress_answer(state: &AppState, id: i64) -> Result<HttpResponse, ApiError> {
    let progress = state
        .db
        .run(move |conn| Ok(digest_progress(conn, id)?))
        .await?;
    progress
        .map(|p| HttpResponse::Ok().json(p))
        .ok_or_else(|| ApiError::NotFound(format!("digest {id} does not exist")))
}

/// Which way staff move a send.
#[derive(Debug, Clone, Copy)]
enum Move {
    Pause,
    Resume,
    Cancel,
}

pub async fn pause_digest(
    staff: Staff,
    id: web::Path<i64>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    move_digest(staff, id.into_inner(), state, Move::Pause).await
}

pub async fn resume_digest(
    staff: Staff,
    id: web::Path<i64>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    move_digest(staff, id.into_inner(), state, Move::Resume).await
}

pub async fn cancel_digest(
    staff: Staff,
    id: web::Path<i64>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    move_digest(staff, id.into_inner(), state, Move::Cancel).await
}

/// Pauses, resumes or cancels; answers the digest's status (as `GET /digests/{id}`). This
/// process's own worker hears of it at once; others at their next claim or record.
async fn move_digest(
    staff: Staff,
    id: i64,
    state: web::Data<AppState>,
    to: Move,
) -> Result<HttpResponse, ApiError> {
    let who = staff.name.clone();
    let transition = state
        .db
        .run(move |conn| match to {
            Move::Pause => pause(conn, id, &format!("paused by {who}")),
            Move::Resume => resume(conn, id),
            Move::Cancel => cancel(conn, id, &format!("cancelled by {who}")),
        })
        .await?;
    match transition {
        Transition::Done(status) => {
            state.digest_gate.set(id, status);
            if status == DigestStatus::Sending {
                state.wake_worker.notify_one();
            }
            tracing::info!(staff = %staff.name, digest = id, status = status.as_str(), "digest send changed");
        }
        Transition::Already(_) => {}
        Transition::NotFrom(status) => {
            let allowed = match to {
                Move::Pause => "only a sending digest can be paused",
                Move::Resume => "only a paused digest can be resumed",
                Move::Cancel => "only a sending, paused or scheduled digest can be cancelled",
            };
            return Err(ApiError::Conflict(format!(
                "digest {id} is {status}; {allowed}"
            )));
        }
        Transition::NotFound => {
            return Err(ApiError::NotFound(format!("digest {id} does not exist")));
        }
    }
    progress_answer(&state, id).await
}
