//! What a visitor or a client gets for a request the service cannot answer as asked: an unknown
//! path (404), a method a path does not take (405), a body too large (413) or of another type
//! (415), a failure on our side (5xx). A browser gets the site's own page, an API client JSON
//! (`{"error": "..."}`), told apart by `Accept`. A page of ours passes unchanged, and so does JSON
//! of ours unless a browser asked for a page (a form that posted too much); the bare answers
//! (actix's own, with no body or plain text) are rewritten.
//! Staff pages under `/admin` have their own error pages; the staff API always answers JSON.

use actix_web::body::BoxBody;
use actix_web::dev::ServiceResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers};
use actix_web::{HttpRequest, HttpResponse, web};

use super::pages::Page;
use crate::startup::AppState;

/// The middleware, for the whole app.
pub fn error_pages<B: 'static>() -> ErrorHandlers<B> {
    ErrorHandlers::new().default_handler(answer)
}

/// `GET /`: the signup page is the service's front door.
pub async fn front_door(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Found()
        .insert_header((
            header::LOCATION,
            format!("{}/subscribe", state.settings.base_url()),
        ))
        .finish()
}

/// Any path no route takes.
pub async fn not_found() -> HttpResponse {
    HttpResponse::NotFound().finish()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wanted {
    Page,
    Json,
    /// Staff pages: theirs already, left alone.
    Theirs,
}

/// A refusal of a body that was not read (too large, too slow) may leave its rest on the
/// connection: the answer closes it, so that no client sends its next request after it.
fn unread_body(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::PAYLOAD_TOO_LARGE | StatusCode::REQUEST_TIMEOUT
    )
}

fn answer<B: 'static>(
    mut response: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    if unread_body(response.status()) {
        response
            .response_mut()
            .head_mut()
            .set_connection_type(actix_web::http::ConnectionType::Close);
    }
    let kind = content_kind(response.headers());
    let wanted = wanted(response.request());
    // A page of ours always stays; JSON of ours stays unless a browser asked for a page.
    let keep = match kind {
        Some(ContentKind::Html) => true,
        Some(ContentKind::Json) => wanted != Wanted::Page,
        Some(ContentKind::Other) => wanted == Wanted::Theirs,
        None => false,
    };
    if keep {
        return Ok(ErrorHandlerResponse::Response(
            response.map_into_left_body(),
        ));
    }
    let status = response.status();
    // The message of an error of ours (ApiError, actix's extractors) when there is one.
    let detail = response.response().error().map(|e| e.to_string());
    let request = response.request().clone();
    let headers = response.headers().clone();
    let replaced = match wanted {
        Wanted::Json => json(status, detail.as_deref()),
        Wanted::Page | Wanted::Theirs => page(&request, status)?,
    };
    let mut replaced = with_headers_of(replaced, &headers);
    if unread_body(status) {
        replaced
            .head_mut()
            .set_connection_type(actix_web::http::ConnectionType::Close);
    }
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(request, replaced).map_into_right_body::<B>(),
    ))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ContentKind {
    Html,
    Json,
    Other,
}

fn content_kind(headers: &HeaderMap) -> Option<ContentKind> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let essence = value.split(';').next()?.trim().to_ascii_lowercase();
    Some(match essence.as_str() {
        "text/html" => ContentKind::Html,
        "application/json" => ContentKind::Json,
        _ => ContentKind::Other,
    })
}

fn wanted(request: &HttpRequest) -> Wanted {
    let path = request.path();
    if path == "/admin/api" || path.starts_with("/admin/api/") {
        return Wanted::Json;
    }
    if path == "/admin" || path.starts_with("/admin/") {
        return Wanted::Theirs;
    }
    if prefers_html(request.headers()) {
        Wanted::Page
    } else {
        Wanted::Json
    }
}

/// Browsers ask for `text/html`; API clients (`fetch`, curl, libraries) ask for JSON or `*/*`.
fn prefers_html(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|media| {
            let essence = media.split(';').next().unwrap_or_default().trim();
            essence.eq_ignore_ascii_case("text/html")
                || essence.eq_ignore_ascii_case("application/xhtml+xml")
        })
}

/// What a client is told, when the error has no words of its own.
fn plain_reason(status: StatusCode) -> String {
    match status {
        StatusCode::NOT_FOUND => "no such path".into(),
        StatusCode::METHOD_NOT_ALLOWED => "this path does not take that method".into(),
        StatusCode::PAYLOAD_TOO_LARGE => "the request body is too large".into(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported content type".into(),
        s if s.is_server_error() => "something went wrong on our side".into(),
        s => s.canonical_reason().unwrap_or("error").to_lowercase(),
    }
}

fn json(status: StatusCode, detail: Option<&str>) -> HttpResponse {
    let message = match detail {
        Some(detail) if !status.is_server_error() && !detail.is_empty() => detail.to_string(),
        _ => plain_reason(status),
    };
    HttpResponse::build(status).json(serde_json::json!({ "error": message }))
}

fn page(request: &HttpRequest, status: StatusCode) -> actix_web::Result<HttpResponse> {
    let which = match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method",
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "media_type",
        StatusCode::SERVICE_UNAVAILABLE => "busy",
        s if s.is_server_error() => "ours",
        _ => "other",
    };
    let rendered = request.app_data::<web::Data<AppState>>().and_then(|state| {
        let t = state.templates.texts();
        let mut page = Page::new(
            &t.text(&format!("error.{which}_title"), &[]),
            &[&t.text(&format!("error.{which}_text"), &[])],
        );
        page.show_subscribe_link = true;
        page.render(state, status).ok()
    });
    Ok(rendered.unwrap_or_else(|| {
        HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .body(Page::fallback(
                status.canonical_reason().unwrap_or("Error"),
                "Please try again in a few minutes.",
            ))
    }))
}

/// Carries over what the client needs from the answer replaced (when to retry, which methods).
fn with_headers_of(mut response: HttpResponse, original: &HeaderMap) -> HttpResponse<BoxBody> {
    for name in [header::RETRY_AFTER, header::ALLOW, header::WWW_AUTHENTICATE] {
        if let Some(value) = original.get(&name) {
            response.headers_mut().insert(name, value.clone());
        }
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{ACCEPT, HeaderMap, HeaderValue};

    fn accept(value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn browsers_get_pages_and_clients_get_json() {
        let firefox = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
        assert!(super::prefers_html(&accept(firefox)));
        assert!(!super::prefers_html(&accept("*/*")));
        assert!(!super::prefers_html(&accept("application/json")));
        assert!(!super::prefers_html(&HeaderMap::new()));
    }
}
