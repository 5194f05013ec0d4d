//! The staff pages under `/admin`: server-rendered, usable without JavaScript (which only adds
//! live updates and a Markdown preview). Every page but sign-in and setup needs a signed-in
//! session; every change is a POST carrying the session's CSRF token from a page of ours.

mod account;
mod activity;
mod articles;
mod auth;
mod automations;
mod dashboard;
mod digests;
mod errors;
mod form;
mod login;
mod people;
mod team;

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;

pub use auth::{LoginLimiter, SESSION_COOKIE, Signed};
pub use errors::AdminError;
pub use form::{Change, FormData};

use crate::startup::AppState;

/// Routes of the staff pages; mounted under `/admin` (after `/admin/api`).
pub fn configure(config: &mut web::ServiceConfig) {
    use web::{get, post};
    config
        .route("", get().to(dashboard::page))
        .route("/", get().to(dashboard::page))
        .route("/static/admin.css", get().to(static_css))
        .route("/static/admin.js", get().to(static_js))
        .route("/login", get().to(login::page))
        .route("/login", post().to(login::submit))
        .route("/login/code", get().to(login::code_page))
        .route("/login/code", post().to(login::code_submit))
        .route("/logout", post().to(login::logout))
        .route("/setup", get().to(login::setup_page))
        .route("/setup", post().to(login::setup_submit))
        .route("/articles", get().to(articles::list))
        .route("/articles", post().to(articles::create))
        .route("/articles/import", post().to(articles::import))
        .route("/articles/{id}", get().to(articles::edit_page))
        .route("/articles/{id}", post().to(articles::update))
        .route("/articles/{id}/delete", post().to(articles::delete))
        .route("/automations", get().to(automations::list))
        .route("/automations", post().to(automations::create))
        .route("/automations/{id}/run", post().to(automations::run))
        .route("/automations/{id}/delete", post().to(automations::delete))
        .route("/digests", get().to(digests::list))
        .route("/digests", post().to(digests::create))
        .route("/digests/new", get().to(digests::new_page))
        .route("/markdown", post().to(digests::markdown))
        .route("/digests/{id}", get().to(digests::show))
        .route("/digests/{id}/edit", get().to(digests::edit_page))
        .route("/digests/{id}/edit", post().to(digests::update))
        .route("/digests/{id}/delete", post().to(digests::delete))
        .route("/digests/{id}/preview", get().to(digests::preview_frame))
        .route("/digests/{id}/progress", get().to(digests::progress))
        .route("/digests/{id}/test", post().to(digests::test))
        .route("/digests/{id}/send", get().to(digests::confirm_page))
        .route("/digests/{id}/send", post().to(digests::send))
        .route("/digests/{id}/schedule", post().to(digests::schedule))
        .route("/digests/{id}/unschedule", post().to(digests::unschedule))
        .route("/digests/{id}/cancel", get().to(digests::cancel_page))
        .route(
            "/digests/{id}/{action:pause|resume|cancel}",
            post().to(digests::move_digest),
        )
        .route("/subscribers", get().to(people::list))
        .route("/subscribers/export.csv", get().to(people::export))
        .route("/subscribers/import", post().to(people::import))
        .route("/subscribers/{id}", get().to(people::show))
        .route(
            "/subscribers/{id}/unsubscribe",
            post().to(people::unsubscribe),
        )
        .route("/subscribers/{id}/erase", get().to(people::erase_page))
        .route("/subscribers/{id}/erase", post().to(people::erase))
        .route("/staff", get().to(team::page))
        .route("/staff", post().to(team::add))
        .route("/staff/{id}/remove", post().to(team::remove))
        .route("/tokens", post().to(team::create_token))
        .route("/tokens/{id}/revoke", post().to(team::revoke_token))
        .route("/activity", get().to(activity::page))
        .route("/account", get().to(account::page))
        .route("/account/two-factor", post().to(account::start_two_factor))
        .route(
            "/account/two-factor/confirm",
            post().to(account::confirm_two_factor),
        )
        .route(
            "/account/two-factor/disable",
            post().to(account::disable_two_factor),
        );
}

const CSS: &str = include_str!("../../../templates/admin/admin.css");
const JS: &str = include_str!("../../../templates/admin/admin.js");

async fn static_css() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header(("Cache-Control", "public, max-age=3600"))
        .body(CSS)
}

async fn static_js() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header(("Cache-Control", "public, max-age=3600"))
        .body(JS)
}

/// What every staff page's layout needs.
#[derive(Serialize)]
struct Frame<'a, T: Serialize> {
    site_name: &'a str,
    /// The section the navigation marks as current.
    section: &'a str,
    title: &'a str,
    staff_name: Option<String>,
    staff_email: Option<String>,
    csrf: Option<String>,
    notice: Option<&'static str>,
    #[serde(flatten)]
    page: T,
}

/// The headers of every staff page: never cached, never framed, scripts only from us.
pub(crate) fn page_headers(status: StatusCode) -> actix_web::HttpResponseBuilder {
    let mut response = HttpResponse::build(status);
    response
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(("Referrer-Policy", "same-origin"))
        .insert_header(("X-Frame-Options", "DENY"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header((
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
             frame-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ));
    response
}

/// Renders `templates/admin/<template>.html` in the layout, for a signed-in person (or nobody,
/// on the sign-in pages).
pub(crate) fn render<T: Serialize>(
    state: &AppState,
    signed: Option<&Signed>,
    request: &HttpRequest,
    template: &str,
    section: &str,
    title: &str,
    page: T,
) -> Result<HttpResponse, AdminError> {
    render_status(
        state,
        signed,
        request,
        template,
        section,
        title,
        StatusCode::OK,
        page,
    )
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn render_status<T: Serialize>(
    state: &AppState,
    signed: Option<&Signed>,
    request: &HttpRequest,
    template: &str,
    section: &str,
    title: &str,
    status: StatusCode,
    page: T,
) -> Result<HttpResponse, AdminError> {
    let frame = Frame {
        site_name: &state.settings.site.name,
        section,
        title,
        staff_name: signed.map(|s| {
            s.member
                .name
                .clone()
                .unwrap_or_else(|| s.member.email.clone())
        }),
        staff_email: signed.map(|s| s.member.email.clone()),
        csrf: signed.map(|s| s.csrf.clone()),
        notice: notice(request),
        page,
    };
    let html = state
        .templates
        .render_page(
            &format!("admin/{}", template.trim_end_matches(".html")),
            frame,
        )
        .map_err(AdminError::Unexpected)?;
    Ok(page_headers(status).body(html))
}

/// The message a page shows after a change, named by `?done=` in the redirect that followed it
/// (only these fixed words, never text from the query).
fn notice(request: &HttpRequest) -> Option<&'static str> {
    let query: BTreeMap<String, String> =
        serde_urlencoded::from_str(request.query_string()).unwrap_or_default();
    Some(match query.get("done")?.as_str() {
        "article-added" => "The article was added.",
        "article-saved" => "The article was saved.",
        "article-deleted" => "The article was deleted.",
        "draft-saved" => "The draft was saved.",
        "draft-deleted" => "The draft was deleted.",
        "test-sent" => "The test was sent. It should arrive within a minute.",
        "sending" => "The digest is being sent.",
        "automation-added" => "The automation was added. It runs at its next time by itself.",
        "automation-ran" => "The automation ran; its row says what it did.",
        "automation-removed" => "The automation was removed. The digests it made stay.",
        "scheduled" => "The digest is scheduled. It goes out at that time by itself.",
        "unscheduled" => "The digest is a draft again; nothing is scheduled.",
        "paused" => "The send is paused. Nothing more goes out until you resume it.",
        "resumed" => "The send goes on.",
        "cancelled" => "The send was cancelled. What had not gone out will not be sent.",
        "unsubscribed" => "The person was unsubscribed. Nothing more will be sent to them.",
        "erased" => {
            "The person was erased. Only a hash of the address is kept, so that an import cannot add them again."
        }
        "staff-removed" => "The staff member was removed and their sessions ended.",
        "token-revoked" => "The token was revoked; requests with it are refused from now on.",
        "two-factor-off" => "Two-factor sign-in is off for your account.",
        "password-set" => "Your password is set. Sign in with it now.",
        _ => return None,
    })
}

/// A redirect after a change (303: the browser follows with a GET).
pub(crate) fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header(("Location", location.to_string()))
        .finish()
}

/// A redirect to the sign-in page is how a signed-out browser is answered, not a failure:
/// the response goes out without the error attached, so the request log does not call it one.
pub fn quiet_redirects<B>(
    response: actix_web::dev::ServiceResponse<B>,
) -> actix_web::dev::ServiceResponse<actix_web::body::EitherBody<B>> {
    let redirect =
        response.response().error().is_some() && response.status() == StatusCode::SEE_OTHER;
    if !redirect {
        return response.map_into_left_body();
    }
    let location = response.headers().get("Location").cloned();
    let (request, _) = response.into_parts();
    let mut fresh = HttpResponse::SeeOther();
    if let Some(location) = location {
        fresh.insert_header(("Location", location));
    }
    actix_web::dev::ServiceResponse::new(request, fresh.finish()).map_into_right_body()
}

/// 1,234,567.
pub fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn thousands_are_grouped() {
        assert_eq!(super::thousands(0), "0");
        assert_eq!(super::thousands(999), "999");
        assert_eq!(super::thousands(1234), "1,234");
        assert_eq!(super::thousands(1_234_567), "1,234,567");
    }
}
