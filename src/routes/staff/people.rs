//! Subscribers: search by the start of an address or a name, filter by status, a person's
//! consent ledger and mails, unsubscribe and erase; export and import CSV.

use actix_multipart::Multipart;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use super::form::check_origin;
use super::{AdminError, Change, Signed, render, render_status, see_other, thousands};
use crate::db::dashboard::status_counts;
use crate::db::events::EventContext;
use crate::db::staff::log_activity;
use crate::db::subscribers::{
    LedgerEntry, MailEntry, Subscriber, WithoutStatus, erase_subscriber, find_subscriber,
    import_in_batches, ledger_of, mails_of, search_subscribers, subscribers_after,
    unsubscribe_by_staff,
};
use crate::domain::{SubscriberStatus, mask_address};
use crate::list_csv;
use crate::startup::AppState;

const PER_PAGE: i64 = 50;
/// The largest CSV the import form takes.
const MAX_IMPORT_BYTES: usize = 20 * 1024 * 1024;

#[derive(Deserialize)]
pub struct ListQuery {
    q: Option<String>,
    status: Option<String>,
    page: Option<i64>,
}

#[derive(Serialize)]
struct Row {
    #[serde(flatten)]
    subscriber: Subscriber,
    since: String,
}

#[derive(Serialize)]
struct ListPage {
    q: String,
    status: String,
    statuses: Vec<(String, String)>,
    rows: Vec<Row>,
    page: i64,
    next_url: Option<String>,
    previous_url: Option<String>,
    error: Option<String>,
    import: Option<ImportSummary>,
}

#[derive(Serialize)]
struct ImportSummary {
    imported: String,
    existing: String,
    suppressed: String,
    asked_to_confirm: String,
    invalid: Vec<String>,
    more_invalid: usize,
}

fn page_url(q: &str, status: &str, page: i64) -> String {
    format!(
        "/admin/subscribers?{}",
        serde_urlencoded::to_string([("q", q), ("status", status), ("page", &page.to_string())])
            .unwrap_or_default()
    )
}

#[allow(clippy::too_many_arguments)]
async fn list_page(
    signed: &Signed,
    request: &HttpRequest,
    state: &AppState,
    q: String,
    status: String,
    page: i64,
    import: Option<ImportSummary>,
    error: Option<String>,
) -> Result<HttpResponse, AdminError> {
    let filter = SubscriberStatus::parse_filter(Some(&status))
        .map_err(|_| AdminError::BadRequest("Choose a status from the list.".into()))?;
    let term = q.clone();
    let (rows, more, counts) = state
        .db
        .run(move |conn| {
            let (rows, more) = search_subscribers(conn, &term, filter, page, PER_PAGE)?;
            Ok((rows, more, status_counts(conn)?))
        })
        .await?;
    let statuses = ["confirmed", "pending", "unsubscribed", "bounced"]
        .iter()
        .map(|s| {
            (
                s.to_string(),
                format!("{s} ({})", thousands(counts.get(*s).copied().unwrap_or(0))),
            )
        })
        .collect();
    let status_code = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let content = ListPage {
        next_url: more.then(|| page_url(&q, &status, page + 1)),
        previous_url: (page > 1).then(|| page_url(&q, &status, page - 1)),
        rows: rows
            .into_iter()
            .map(|s| Row {
                since: s.created_at.format("%Y-%m-%d").to_string(),
                subscriber: s,
            })
            .collect(),
        statuses,
        q,
        status,
        page,
        error,
        import,
    };
    render_status(
        state,
        Some(signed),
        request,
        "subscribers.html",
        "subscribers",
        "Subscribers",
        status_code,
        content,
    )
}

pub async fn list(
    signed: Signed,
    request: HttpRequest,
    query: web::Query<ListQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    let query = query.into_inner();
    let q: String = query
        .q
        .unwrap_or_default()
        .trim()
        .chars()
        .take(254)
        .collect();
    let page = query.page.unwrap_or(1).clamp(1, 100_000);
    list_page(
        &signed,
        &request,
        &state,
        q,
        query.status.unwrap_or_default(),
        page,
        None,
        None,
    )
    .await
}

#[derive(Serialize)]
struct PersonPage {
    subscriber: Subscriber,
    ledger: Vec<LedgerEntry>,
    mails: Vec<MailEntry>,
    can_unsubscribe: bool,
}

async fn load_person(state: &AppState, id: i64) -> Result<Subscriber, AdminError> {
    state
        .db
        .run(move |conn| Ok(find_subscriber(conn, id)?))
        .await?
        .ok_or_else(|| {
            AdminError::NotFound(format!(
                "There is no subscriber {id}; they may have been erased."
            ))
        })
}

pub async fn show(
    signed: Signed,
    request: HttpRequest,
    id: web::Path<i64>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    let id = id.into_inner();
    let subscriber = load_person(&state, id).await?;
    let (ledger, mails) = state
        .db
        .run(move |conn| Ok((ledger_of(conn, id)?, mails_of(conn, id, 100)?)))
        .await?;
    let title = subscriber.email.clone();
    let page = PersonPage {
        can_unsubscribe: matches!(subscriber.status.as_str(), "pending" | "confirmed"),
        subscriber,
        ledger,
        mails,
    };
    render(
        &state,
        Some(&signed),
        &request,
        "subscriber.html",
        "subscribers",
        &title,
        page,
    )
}

fn staff_context(request: &HttpRequest, state: &AppState, signed: &Signed) -> EventContext {
    crate::routes::event_context(request, state, "staff-pages")
        .with_detail(format!("by {}", signed.member.label()))
}

pub async fn unsubscribe(
    change: Change,
    request: HttpRequest,
    id: web::Path<i64>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    let id = id.into_inner();
    let context = staff_context(&request, &state, &change.staff);
    let actor = change.staff.actor();
    let done = state
        .db
        .run(move |conn| {
            let done = unsubscribe_by_staff(conn, id, &context)?;
            if let Some(s) = &done {
                log_activity(
                    conn,
                    &actor,
                    "unsubscribed a person",
                    &format!("subscriber {} ({})", s.id, mask_address(&s.email)),
                )?;
            }
            Ok(done)
        })
        .await?;
    done.ok_or_else(|| AdminError::NotFound(format!("There is no subscriber {id}.")))?;
    Ok(see_other(&format!(
        "/admin/subscribers/{id}?done=unsubscribed"
    )))
}

pub async fn erase_page(
    signed: Signed,
    request: HttpRequest,
    id: web::Path<i64>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    let subscriber = load_person(&state, id.into_inner()).await?;
    let title = format!("Erase {}?", subscriber.email);
    render(
        &state,
        Some(&signed),
        &request,
        "erase.html",
        "subscribers",
        &title,
        serde_json::json!({ "subscriber": subscriber }),
    )
}

pub async fn erase(
    change: Change,
    request: HttpRequest,
    id: web::Path<i64>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    let id = id.into_inner();
    let context = crate::routes::event_context(&request, &state, "staff-pages");
    let actor = change.staff.actor();
    let erased = state
        .db
        .run(move |conn| {
            let erased = erase_subscriber(conn, id, &context)?;
            if let Some(email) = &erased {
                log_activity(
                    conn,
                    &actor,
                    "erased a person",
                    &format!("subscriber {id} ({})", mask_address(email)),
                )?;
            }
            Ok(erased)
        })
        .await?;
    erased.ok_or_else(|| {
        AdminError::NotFound(format!(
            "There is no subscriber {id}; they may have been erased already."
        ))
    })?;
    Ok(see_other("/admin/subscribers?done=erased"))
}

#[derive(Deserialize)]
pub struct ExportQuery {
    status: Option<String>,
}

/// The list (or one status of it) as CSV, streamed a thousand rows at a time.
pub async fn export(
    signed: Signed,
    query: web::Query<ExportQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    let status =
        SubscriberStatus::parse_filter(query.status.as_deref()).map_err(AdminError::BadRequest)?;
    let (actor, detail) = (
        signed.actor(),
        status
            .map(|s| s.as_str().to_string())
            .unwrap_or_else(|| "all".into()),
    );
    state
        .db
        .run(move |conn| Ok(log_activity(conn, &actor, "exported subscribers", &detail)?))
        .await?;
    let db = state.db.clone();
    let mut header = csv::Writer::from_writer(Vec::new());
    list_csv::write_header(&mut header).map_err(|e| AdminError::Unexpected(e.into()))?;
    let first = header
        .into_inner()
        .map_err(|e| AdminError::Unexpected(anyhow::anyhow!("{e}")))?;
    let rows = futures_util::stream::unfold(Some(0i64), move |after| {
        let db = db.clone();
        async move {
            let after = after?;
            let batch = db
                .run(move |conn| Ok(subscribers_after(conn, status, after, 1000)?))
                .await;
            match batch {
                Ok(batch) if batch.is_empty() => None,
                Ok(batch) => {
                    let last = batch.last().map(|s| s.id);
                    let mut csv = csv::Writer::from_writer(Vec::new());
                    for s in &batch {
                        if list_csv::write_subscriber(&mut csv, s).is_err() {
                            return None;
                        }
                    }
                    let bytes = csv.into_inner().unwrap_or_default();
                    Some((Ok::<_, actix_web::Error>(web::Bytes::from(bytes)), last))
                }
                Err(e) => {
                    tracing::error!(error = format!("{e:#}"), "subscriber export failed");
                    Some((
                        Err(actix_web::error::ErrorInternalServerError("export failed")),
                        None,
                    ))
                }
            }
        }
    });
    let body =
        futures_util::stream::once(
            async move { Ok::<_, actix_web::Error>(web::Bytes::from(first)) },
        )
        .chain(rows);
    let name = format!("subscribers-{}.csv", crate::db::now().format("%Y-%m-%d"));
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"{name}\""),
        ))
        .insert_header(("Cache-Control", "no-store"))
        .streaming(body))
}

/// The fields of the import form.
#[derive(Default)]
struct ImportForm {
    csrf: String,
    file_name: String,
    file: Vec<u8>,
    confirmed: bool,
    consent: String,
}

async fn read_import_form(mut multipart: Multipart) -> Result<ImportForm, AdminError> {
    let mut form = ImportForm::default();
    while let Some(field) = multipart.next().await {
        let mut field = field
            .map_err(|e| AdminError::BadRequest(format!("The upload could not be read: {e}")))?;
        let name = field.name().unwrap_or_default().to_string();
        if name == "file" {
            form.file_name = field
                .content_disposition()
                .and_then(|d| d.get_filename())
                .unwrap_or("upload.csv")
                .to_string();
        }
        let mut value = Vec::new();
        while let Some(chunk) = field.next().await {
            let chunk = chunk.map_err(|e| {
                AdminError::BadRequest(format!("The upload could not be read: {e}"))
            })?;
            let limit = if name == "file" {
                MAX_IMPORT_BYTES
            } else {
                10_000
            };
            if value.len() + chunk.len() > limit {
                return Err(AdminError::BadRequest(format!(
                    "The file is larger than {} MB; split it into smaller files.",
                    MAX_IMPORT_BYTES / 1024 / 1024
                )));
            }
            value.extend_from_slice(&chunk);
        }
        let text = || String::from_utf8_lossy(&value).trim().to_string();
        match name.as_str() {
            "csrf" => form.csrf = text(),
            "confirmed" => form.confirmed = !value.is_empty(),
            "consent" => form.consent = text(),
            "file" => form.file = value,
            _ => {}
        }
    }
    Ok(form)
}

pub async fn import(
    signed: Signed,
    request: HttpRequest,
    multipart: Multipart,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    check_origin(&request)?;
    let form = read_import_form(multipart).await?;
    signed.check_csrf(&form.csrf)?;
    let refuse = |message: &str| {
        list_page(
            &signed,
            &request,
            &state,
            String::new(),
            String::new(),
            1,
            None,
            Some(message.to_string()),
        )
    };
    if form.file.is_empty() {
        return refuse("Choose a CSV file to import.").await;
    }
    let without_status = if form.confirmed {
        if form.consent.is_empty() {
            return refuse("To add people as confirmed, say how they agreed to get the newsletter (it is kept in their consent record).").await;
        }
        WithoutStatus::Confirmed {
            consent: form.consent.clone(),
        }
    } else {
        WithoutStatus::Pending
    };
    let read = match list_csv::read_people(form.file.as_slice()) {
        Ok(read) => read,
        Err(e) => return refuse(&format!("The file could not be read: {e:#}.")).await,
    };
    let total = import_in_batches(
        &state.db,
        &read.people,
        &without_status,
        &form.file_name,
        |_| {},
    )
    .await?;
    if total.asked_to_confirm > 0 {
        state.wake_worker.notify_one();
    }
    let (actor, detail) = (
        signed.actor(),
        format!(
            "{}: {} imported, {} already on the list",
            form.file_name, total.imported, total.existing
        ),
    );
    state
        .db
        .run(move |conn| Ok(log_activity(conn, &actor, "imported subscribers", &detail)?))
        .await?;
    let summary = ImportSummary {
        imported: thousands(total.imported as i64),
        existing: thousands(total.existing as i64),
        suppressed: thousands(total.suppressed as i64),
        asked_to_confirm: thousands(total.asked_to_confirm as i64),
        more_invalid: read.invalid.len().saturating_sub(20),
        invalid: read.invalid.into_iter().take(20).collect(),
    };
    list_page(
        &signed,
        &request,
        &state,
        String::new(),
        String::new(),
        1,
        Some(summary),
        None,
    )
    .await
}
