//! Digests in the browser: compose a draft, preview it as a reader gets it, send a test, send it
//! after a confirmation step, and watch it go out (with pause, resume and cancel).

use std::collections::BTreeSet;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;

use super::articles::sentence;
use super::dashboard::DigestRow;
use super::{AdminError, Change, FormData, Signed, render, render_status, see_other, thousands};
use crate::db::articles::{Article, list_articles};
use crate::db::dashboard::{failed_deliveries, status_counts, summarize};
use crate::db::digests::{
    CreateDigestError, Digest, DraftChange, NewDigest, ScheduleOutcome, SendStart, Transition,
    articles_in_sent_digests, cancel_digest, create_digest, delete_draft, digest_articles,
    digest_progress, find_digest, list_digests, pause_digest, queue_digest, resume_digest,
    schedule_digest, unschedule_digest, update_draft,
};
use crate::db::staff::log_activity;
use crate::digests::{
    PreviewFormat, TestSendError, markdown_to_html, parse_digest, parse_schedule_time, preview,
    send_test,
};
use crate::domain::DigestStatus;
use crate::startup::AppState;

/// Articles offered on the compose page, newest first.
const OFFERED_ARTICLES: i64 = 200;

fn missing(id: i64) -> AdminError {
    AdminError::NotFound(format!(
        "There is no digest {id}; it may have been deleted."
    ))
}

pub async fn list(
    signed: Signed,
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    let rows = state
        .db
        .run(|conn| {
            let digests = list_digests(conn)?;
            let summaries: Vec<_> = digests
                .into_iter()
                .map(|d| summarize(conn, d))
                .collect::<Result<_, _>>()?;
            Ok(summaries)
        })
        .await?;
    let digests: Vec<DigestRow> = rows.into_iter().map(DigestRow::from).collect();
    render(
        &state,
        Some(&signed),
        &request,
        "digests.html",
        "digests",
        "Digests",
        serde_json::json!({ "digests": digests }),
    )
}

#[derive(Serialize)]
struct Choice {
    id: i64,
    title: String,
    published: String,
    checked: bool,
    in_sent_digest: bool,
}

#[derive(Serialize)]
struct ComposePage {
    /// None: a new digest.
    id: Option<i64>,
    subject: String,
    intro: String,
    intro_html: String,
    articles: Vec<Choice>,
    /// Shown in the public archive once sent.
    archive: bool,
    error: Option<String>,
}

/// The compose form; `chosen` None preselects the articles not yet in a sent digest.
async fn compose_page(
    signed: &Signed,
    request: &HttpRequest,
    state: &AppState,
    mut page: ComposePage,
    chosen: Option<BTreeSet<i64>>,
    status: StatusCode,
) -> Result<HttpResponse, AdminError> {
    let (articles, sent): (Vec<Article>, BTreeSet<i64>) = state
        .db
        .run(|conn| {
            Ok((
                list_articles(conn, 1, OFFERED_ARTICLES)?,
                articles_in_sent_digests(conn)?,
            ))
        })
        .await?;
    page.articles = articles
        .into_iter()
        .map(|a| Choice {
            checked: match &chosen {
                Some(chosen) => chosen.contains(&a.id),
                None => !sent.contains(&a.id),
            },
            in_sent_digest: sent.contains(&a.id),
            id: a.id,
            published: a.published_at.format("%-d %b %Y").to_string(),
            title: a.title,
        })
        .collect();
    page.intro_html = markdown_to_html(&page.intro);
    let title = if page.id.is_some() {
        "Edit digest"
    } else {
        "New digest"
    };
    render_status(
        state,
        Some(signed),
        request,
        "compose.html",
        "digests",
        title,
        status,
        page,
    )
}

pub async fn new_page(
    signed: Signed,
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    let page = ComposePage {
        id: None,
        subject: String::new(),
        intro: String::new(),
        intro_html: String::new(),
        articles: Vec::new(),
        archive: true,
        error: None,
    };
    compose_page(&signed, &request, &state, page, None, StatusCode::OK).await
}

/// The subject, intro, ticked articles and archive choice of a compose form.
fn composed(form: &FormData) -> Result<NewDigest, String> {
    let subject = form.get("subject").to_string();
    let intro = form.raw("intro").replace("\r\n", "\n");
    let ids: Vec<i64> = form
        .all("article")
        .iter()
        .filter_map(|v| v.parse().ok())
        .collect();
    if ids.is_empty() {
        return Err("Tick at least one article for the digest.".into());
    }
    if intro.chars().count() > 20_000 {
        return Err("The introduction can have at most 20,000 characters.".into());
    }
    let choice = parse_digest(&subject, Some(ids), None).map_err(|e| sentence(&e))?;
    Ok(NewDigest {
        subject: subject.trim().to_string(),
        intro,
        choice,
        archive: form.get("archive") == "yes",
    })
}

fn refused_page(id: Option<i64>, form: &FormData, error: String) -> (ComposePage, BTreeSet<i64>) {
    let chosen = form
        .all("article")
        .iter()
        .filter_map(|v| v.parse().ok())
        .collect();
    let page = ComposePage {
        id,
        subject: form.get("subject").to_string(),
        intro: form.raw("intro").to_string(),
        intro_html: String::new(),
        articles: Vec::new(),
        archive: form.get("archive") == "yes",
        error: Some(error),
    };
    (page, chosen)
}

pub async fn create(
    change: Change,
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    let Change { staff, form } = change;
    let new = match composed(&form) {
        Ok(new) => new,
        Err(error) => {
            let (page, chosen) = refused_page(None, &form, error);
            return compose_page(
                &staff,
                &request,
                &state,
                page,
                Some(chosen),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
    };
    let actor = staff.actor();
    let created = state
        .db
        .run(move |conn| {
            let created = create_digest(conn, &new);
            if let Ok((digest, articles)) = &created {
                log_activity(
                    conn,
                    &actor,
                    "created digest",
                    &format!(
                        "{} ({}), {} articles",
                        digest.subject,
                        digest.id,
                        articles.len()
                    ),
                )?;
            }
            Ok(created)
        })
        .await?;
    match created {
        Ok((digest, _)) => Ok(see_other(&format!(
            "/admin/digests/{}?done=draft-saved",
            digest.id
        ))),
        Err(CreateDigestError::Invalid(message)) => {
            let (page, chosen) = refused_page(None, &form, sentence(&message));
            compose_page(
                &staff,
                &request,
                &state,
                page,
                Some(chosen),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Err(CreateDigestError::Unexpected(e)) => Err(e.into()),
    }
}

async fn load_draft(state: &AppState, id: i64) -> Result<(Digest, Vec<Article>), AdminError> {
    let found = state
        .db
        .run(move |conn| {
            Ok(match find_digest(conn, id)? {
                Some(d) => Some((d, digest_articles(conn, id)?)),
                None => None,
            })
        })
        .await?;
    found.ok_or_else(|| missing(id))
}

fn not_draft(id: i64, status: &str) -> AdminError {
    AdminError::Forbidden(format!(
        "Digest {id} is {status}: only a draft can be changed or deleted. Readers got it as it is."
    ))
}

pub async fn edit_page(
    signed: Signed,
    request: HttpRequest,
    id: web::Path<i64>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    let (digest, articles) = load_draft(&state, id.into_inner()).await?;
    if digest.status != DigestStatus::Draft.as_str() {
        return Err(not_draft(digest.id, &digest.status));
    }
    let chosen = articles.iter().map(|a| a.id).collect();
    let page = ComposePage {
        id: Some(digest.id),
        subject: digest.subject,
        intro: digest.intro,
        intro_html: String::new(),
        articles: Vec::new(),
        archive: digest.archive,
        error: None,
    };
    compose_page(
        &signed,
        &request,
        &state,
        page,
        Some(chosen),
        StatusCode::OK,
    )
    .await
}

pub async fn update(
    change: Change,
    request: HttpRequest,
    id: web::Path<i64>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    let Change { staff, form } = change;
    let id = id.into_inner();
    let new = match composed(&form) {
        Ok(new) => new,
        Err(error) => {
            let (page, chosen) = refused_page(Some(id), &form, error);
            return compose_page(
                &staff,
                &request,
                &state,
                page,
                Some(chosen),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
    };
    let actor = staff.actor();
    let logged = new.subject.clone();
    let outcome = state
        .db
        .run(move |conn| {
            let outcome = update_draft(conn, id, &new)?;
            if outcome == DraftChange::Done {
                log_activity(conn, &actor, "edited digest", &format!("{logged} ({id})"))?;
            }
            Ok(outcome)
        })
        .await?;
    match outcome {
        DraftChange::Done => Ok(see_other(&format!("/admin/digests/{id}?done=draft-saved"))),
        DraftChange::NotFound => Err(missing(id)),
        DraftChange::NotDraft(status) => Err(not_draft(id, &status)),
        DraftChange::Invalid(message) => {
            let (page, chosen) = refused_page(Some(id), &form, sentence(&message));
            compose_page(
                &staff,
                &request,
                &state,
                page,
                Some(chosen),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
    }
}

pub async fn delete(
    change: Change,
    id: web::Path<i64>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    let id = id.into_inner();
    let actor = change.staff.actor();
    let outcome = state
        .db
        .run(move |conn| {
            let subject = find_digest(conn, id)?
                .map(|d| d.subject)
                .unwrap_or_default();
            let outcome = delete_draft(conn, id)?;
            if outcome == DraftChange::Done {
                log_activity(conn, &actor, "deleted digest", &format!("{subject} ({id})"))?;
            }
            Ok(outcome)
        })
        .await?;
    match outcome {
        DraftChange::Done => Ok(see_other("/admin/digests?done=draft-deleted")),
        DraftChange::NotFound => Err(missing(id)),
        DraftChange::NotDraft(status) => Err(not_draft(id, &status)),
        DraftChange::Invalid(message) => Err(AdminError::BadRequest(message)),
    }
}

#[derive(Serialize)]
struct Failure {
    email: String,
    failure: String,
    error: String,
}

#[derive(Serialize)]
struct ShowPage {
    digest: Digest,
    articles: Vec<Article>,
    /// Not sent yet: a draft, a scheduled digest, or one that missed its time.
    is_draft: bool,
    /// Only a draft's content changes.
    can_edit: bool,
    /// When a scheduled digest goes out, on the clinic's clock.
    scheduled_for: Option<String>,
    /// The clinic's time zone, which "Send later" is read in.
    timezone: String,
    schedule_at: String,
    schedule_error: Option<String>,
    live: bool,
    can_pause: bool,
    can_resume: bool,
    can_cancel: bool,
    confirmed: i64,
    confirmed_text: String,
    progress: Option<ProgressView>,
    failures: Vec<Failure>,
    text_preview: String,
    test_email: String,
    test_error: Option<String>,
    /// Why the draft cannot be sent yet (no postal address set).
    not_ready: Option<String>,
}

/// How far a send has come, as the page and its live updates show it.
#[derive(Serialize)]
pub struct ProgressView {
    status: String,
    status_reason: Option<String>,
    recipients: i64,
    queued: i64,
    sent: i64,
    failed: i64,
    skipped: i64,
    /// Readers whose copy came back later as a hard bounce, and who complained.
    bounced: i64,
    complained: i64,
    /// Done of all, 0 to 100.
    percent: i64,
    started_at: Option<String>,
    finished_at: Option<String>,
}

/// The progress of a digest that is not a draft: live while it sends, its kept totals once the
/// send is over (see [`summarize`]), so a finished digest's page does not count its deliveries
/// on every view.
fn progress_of(conn: &mut crate::db::DbConnection, digest: Digest) -> anyhow::Result<ProgressView> {
    let (bounced, complained) = crate::db::bounces::digest_bounce_counts(conn, digest.id)?;
    let p = summarize(conn, digest)?;
    let total = p.queued + p.sent + p.failed + p.skipped;
    let done = p.sent + p.failed + p.skipped;
    Ok(ProgressView {
        bounced,
        complained,
        percent: if total == 0 { 100 } else { done * 100 / total },
        started_at: p.digest.started_at.map(crate::db::staff_time),
        finished_at: p.digest.finished_at.map(crate::db::staff_time),
        status: p.digest.status,
        status_reason: p.digest.status_reason,
        recipients: p.digest.recipients,
        queued: p.queued,
        sent: p.sent,
        failed: p.failed,
        skipped: p.skipped,
    })
}

/// What a form of the digest's page was refused for, shown on it with what was typed.
enum Refused {
    Test { email: String, error: String },
    Schedule { at: String, error: String },
}

async fn show_page(
    signed: &Signed,
    request: &HttpRequest,
    state: &AppState,
    id: i64,
    refused: Option<Refused>,
) -> Result<HttpResponse, AdminError> {
    let (digest, articles) = load_draft(state, id).await?;
    let status = DigestStatus::parse(&digest.status);
    let is_draft = status.is_some_and(DigestStatus::is_unsent);
    let shown = digest.clone();
    let (confirmed, progress, failures) = state
        .db
        .run(move |conn| {
            let confirmed = status_counts(conn)?.get("confirmed").copied().unwrap_or(0);
            let progress = if is_draft {
                None
            } else {
                Some(progress_of(conn, shown)?)
            };
            let failures = if is_draft {
                Vec::new()
            } else {
                failed_deliveries(conn, id, 100)?
            };
            Ok((confirmed, progress, failures))
        })
        .await?;
    let text_preview = if is_draft {
        preview(&state.db, &state.composer, id, PreviewFormat::Text).await?
    } else {
        String::new()
    };
    let zone = state.settings.site.tz();
    let (mut test_email, mut test_error) = (signed.member.email.clone(), None);
    let (mut schedule_at, mut schedule_error) = (String::new(), None);
    match refused {
        Some(Refused::Test { email, error }) => (test_email, test_error) = (email, Some(error)),
        Some(Refused::Schedule { at, error }) => (schedule_at, schedule_error) = (at, Some(error)),
        None => {}
    }
    let page = ShowPage {
        is_draft,
        can_edit: matches!(status, Some(DigestStatus::Draft)),
        scheduled_for: digest
            .scheduled_at
            .filter(|_| matches!(status, Some(DigestStatus::Scheduled)))
            .map(|at| local_time(at, zone)),
        timezone: zone.to_string(),
        schedule_at,
        schedule_error,
        live: matches!(status, Some(DigestStatus::Sending)),
        can_pause: matches!(status, Some(DigestStatus::Sending)),
        can_resume: matches!(status, Some(DigestStatus::Paused)),
        can_cancel: matches!(status, Some(DigestStatus::Sending | DigestStatus::Paused)),
        confirmed,
        confirmed_text: thousands(confirmed),
        progress,
        failures: failures
            .into_iter()
            .map(|(email, failure, error)| Failure {
                email: email.unwrap_or_else(|| "(erased)".into()),
                failure: failure.unwrap_or_default(),
                error: error.unwrap_or_default(),
            })
            .collect(),
        text_preview,
        test_email,
        test_error,
        not_ready: state.settings.site.not_ready_for_digests(),
        articles,
        digest,
    };
    let title = page.digest.subject.clone();
    let status = if page.test_error.is_some() || page.schedule_error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    render_status(
        state,
        Some(signed),
        request,
        "digest.html",
        "digests",
        &title,
        status,
        page,
    )
}

pub async fn show(
    signed: Signed,
    request: HttpRequest,
    id: web::Path<i64>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    show_page(&signed, &request, &state, id.into_inner(), None).await
}

/// The HTML mail alone, for the preview frame of the digest's page.
pub async fn preview_frame(
    _signed: Signed,
    id: web::Path<i64>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    let id = id.into_inner();
    load_draft(&state, id).await?;
    let html = preview(&state.db, &state.composer, id, PreviewFormat::Html).await?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(("X-Frame-Options", "SAMEORIGIN"))
        .insert_header((
            "Content-Security-Policy",
            "default-src 'none'; img-src * data:; style-src 'unsafe-inline'; frame-ancestors 'self'",
        ))
        .body(html))
}

/// The send's counts as JSON, for the page's live updates.
pub async fn progress(
    _signed: Signed,
    id: web::Path<i64>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    let id = id.into_inner();
    let progress = state
        .db
        .run(move |conn| match find_digest(conn, id)? {
            Some(digest) => Ok(Some(progress_of(conn, digest)?)),
            None => Ok(None),
        })
        .await?
        .ok_or_else(|| missing(id))?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(progress))
}

/// The intro's Markdown as HTML, for the compose page's live preview.
pub async fn markdown(change: Change) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .body(markdown_to_html(change.form.raw("intro")))
}

pub async fn test(
    change: Change,
    request: HttpRequest,
    id: web::Path<i64>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    let Change { staff, form } = change;
    let id = id.into_inner();
    load_draft(&state, id).await?;
    let to = form.get("email").to_string();
    match send_test(&state.db, &state.composer, &state.mailer, id, &to).await {
        Ok(()) => {
            let (actor, detail) = (staff.actor(), format!("digest {id} to {to}"));
            state
                .db
                .run(move |conn| Ok(log_activity(conn, &actor, "sent test", &detail)?))
                .await?;
            Ok(see_other(&format!("/admin/digests/{id}?done=test-sent")))
        }
        Err(TestSendError::InvalidAddress(message)) => {
            show_page(
                &staff,
                &request,
                &state,
                id,
                Some(Refused::Test {
                    email: to,
                    error: format!("That is not an address we can send to: {message}."),
                }),
            )
            .await
        }
        Err(e @ TestSendError::Refused(_)) => {
            show_page(
                &staff,
                &request,
                &state,
                id,
                Some(Refused::Test {
                    email: to,
                    error: format!("The test was not sent: {e}."),
                }),
            )
            .await
        }
        Err(TestSendError::Unexpected(e)) => Err(e.into()),
    }
}

#[derive(Serialize)]
struct ConfirmPage {
    digest: Digest,
    confirmed: i64,
    confirmed_text: String,
}

pub async fn confirm_page(
    signed: Signed,
    request: HttpRequest,
    id: web::Path<i64>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    let id = id.into_inner();
    let (digest, _) = load_draft(&state, id).await?;
    let sendable = DigestStatus::parse(&digest.status).is_some_and(DigestStatus::is_unsent);
    if !sendable || state.settings.site.not_ready_for_digests().is_some() {
        return Ok(see_other(&format!("/admin/digests/{id}")));
    }
    let confirmed = state
        .db
        .run(|conn| Ok(status_counts(conn)?.get("confirmed").copied().unwrap_or(0)))
        .await?;
    let title = format!("Send '{}'?", digest.subject);
    let page = ConfirmPage {
        digest,
        confirmed,
        confirmed_text: thousands(confirmed),
    };
    render(
        &state,
        Some(&signed),
        &request,
        "confirm_send.html",
        "digests",
        &title,
        page,
    )
}

/// "Cancel the send?": cancelling cannot be undone, so it is asked first.
pub async fn cancel_page(
    signed: Signed,
    request: HttpRequest,
    id: web::Path<i64>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    let id = id.into_inner();
    let progress = state
        .db
        .run(move |conn| Ok(digest_progress(conn, id)?))
        .await?
        .ok_or_else(|| missing(id))?;
    if !matches!(
        DigestStatus::parse(&progress.status),
        Some(DigestStatus::Sending | DigestStatus::Paused)
    ) {
        return Ok(see_other(&format!("/admin/digests/{id}")));
    }
    let (digest, _) = load_draft(&state, id).await?;
    let title = format!("Cancel the send of '{}'?", digest.subject);
    let page = serde_json::json!({
        "digest": digest,
        "queued": thousands(progress.queued),
        "sent": thousands(progress.sent),
    });
    render(
        &state,
        Some(&signed),
        &request,
        "confirm_cancel.html",
        "digests",
        &title,
        page,
    )
}

pub async fn send(
    change: Change,
    id: web::Path<i64>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    let id = id.into_inner();
    if let Some(why) = state.settings.site.not_ready_for_digests() {
        return Err(AdminError::BadRequest(format!(
            "This digest was not sent: {why}."
        )));
    }
    let actor = change.staff.actor();
    let started = state
        .db
        .run(move |conn| {
            let started = queue_digest(conn, id)?;
            if let SendStart::Queued(queued) = started {
                let subject = find_digest(conn, id)?
                    .map(|d| d.subject)
                    .unwrap_or_default();
                log_activity(
                    conn,
                    &actor,
                    "sent digest",
                    &format!("{subject} ({id}) to {}", thousands(queued)),
                )?;
            }
            Ok(started)
        })
        .await?;
    match started {
        SendStart::Queued(_) => {
            state.wake_worker.notify_one();
            Ok(see_other(&format!("/admin/digests/{id}?done=sending")))
        }
        SendStart::AlreadyStarted => Ok(see_other(&format!("/admin/digests/{id}"))),
        SendStart::NotFound => Err(missing(id)),
    }
}

/// "Send later": the worker starts it at that time, read in the clinic's time zone.
pub async fn schedule(
    change: Change,
    request: HttpRequest,
    id: web::Path<i64>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    let Change { staff, form } = change;
    let id = id.into_inner();
    let typed = form.get("at").to_string();
    let refuse = |error: String| Refused::Schedule {
        at: typed.clone(),
        error,
    };
    let zone = state.settings.site.tz();
    let at = match parse_schedule_time(&typed, zone, crate::db::now()) {
        Ok(at) => at,
        Err(error) => {
            let error = refuse(sentence(&error));
            return show_page(&staff, &request, &state, id, Some(error)).await;
        }
    };
    if let Some(why) = state.settings.site.not_ready_for_digests() {
        return Err(AdminError::BadRequest(format!(
            "This digest was not scheduled: {why}."
        )));
    }
    let actor = staff.actor();
    let outcome = state
        .db
        .run(move |conn| {
            let outcome = schedule_digest(conn, id, at)?;
            if outcome == ScheduleOutcome::Scheduled {
                let detail = format!("digest {id} for {}", crate::db::staff_time(at));
                log_activity(conn, &actor, "scheduled digest", &detail)?;
            }
            Ok(outcome)
        })
        .await?;
    match outcome {
        ScheduleOutcome::Scheduled => Ok(see_other(&format!("/admin/digests/{id}?done=scheduled"))),
        ScheduleOutcome::NotFrom(status) => Err(not_draft(id, status.as_str())),
        ScheduleOutcome::NotFound => Err(missing(id)),
    }
}

/// Takes a scheduled digest back to a draft.
pub async fn unschedule(
    change: Change,
    id: web::Path<i64>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    let id = id.into_inner();
    let actor = change.staff.actor();
    let done = state
        .db
        .run(move |conn| {
            let done = unschedule_digest(conn, id)?;
            if let Transition::Done(_) = done {
                log_activity(conn, &actor, "unscheduled digest", &format!("digest {id}"))?;
            }
            Ok(done)
        })
        .await?;
    match done {
        Transition::NotFound => Err(missing(id)),
        _ => Ok(see_other(&format!("/admin/digests/{id}?done=unscheduled"))),
    }
}

/// A UTC time on the clinic's clock, for staff: `7 December 2026, 09:00 (Europe/Berlin)`.
fn local_time(at: chrono::NaiveDateTime, zone: chrono_tz::Tz) -> String {
    let local = crate::configuration::on_clock(at, zone);
    format!("{} ({zone})", local.format("%-d %B %Y, %H:%M"))
}

#[derive(Clone, Copy)]
enum Move {
    Pause,
    Resume,
    Cancel,
}

async fn move_send(
    change: Change,
    id: i64,
    state: &AppState,
    to: Move,
) -> Result<HttpResponse, AdminError> {
    let actor = change.staff.actor();
    let who = change.staff.member.label();
    let transition = state
        .db
        .run(move |conn| {
            let transition = match to {
                Move::Pause => pause_digest(conn, id, &format!("paused by {who}"))?,
                Move::Resume => resume_digest(conn, id)?,
                Move::Cancel => cancel_digest(conn, id, &format!("cancelled by {who}"))?,
            };
            if let Transition::Done(status) = transition {
                let subject = find_digest(conn, id)?
                    .map(|d| d.subject)
                    .unwrap_or_default();
                let action = match to {
                    Move::Pause => "paused digest",
                    Move::Resume => "resumed digest",
                    Move::Cancel => "cancelled digest",
                };
                log_activity(
                    conn,
                    &actor,
                    action,
                    &format!("{subject} ({id}), now {status}"),
                )?;
            }
            Ok(transition)
        })
        .await?;
    let done = match to {
        Move::Pause => "paused",
        Move::Resume => "resumed",
        Move::Cancel => "cancelled",
    };
    match transition {
        Transition::Done(status) => {
            state.digest_gate.set(id, status);
            if status == DigestStatus::Sending {
                state.wake_worker.notify_one();
            }
            Ok(see_other(&format!("/admin/digests/{id}?done={done}")))
        }
        Transition::Already(_) => Ok(see_other(&format!("/admin/digests/{id}"))),
        Transition::NotFrom(status) => Err(AdminError::Forbidden(format!(
            "Digest {id} is {status}, so it cannot be {done} now."
        ))),
        Transition::NotFound => Err(missing(id)),
    }
}

/// `POST /admin/digests/{id}/pause`, `…/resume` and `…/cancel`.
pub async fn move_digest(
    change: Change,
    path: web::Path<(i64, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    let (id, action) = path.into_inner();
    let to = match action.as_str() {
        "pause" => Move::Pause,
        "resume" => Move::Resume,
        "cancel" => Move::Cancel,
        _ => return Err(AdminError::NotFound("There is no such page.".into())),
    };
    move_send(change, id, &state, to).await
}
