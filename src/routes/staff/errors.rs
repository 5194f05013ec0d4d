//! Failures on the staff pages, as pages: a redirect to sign in, a refusal that says why, or an
//! apology (logged with its whole cause chain).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Not signed in (or the session ended): off to the sign-in page, then back to `next`.
    #[error("sign in first")]
    SignIn { next: String },
    /// Signed in with the password; the second factor is still to come.
    #[error("enter your sign-in code first")]
    SecondFactor,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("too many attempts")]
    RateLimited(u64),
    #[error("the service is busy")]
    Unavailable(#[source] anyhow::Error),
    #[error("something went wrong")]
    Unexpected(anyhow::Error),
}

impl From<anyhow::Error> for AdminError {
    fn from(error: anyhow::Error) -> AdminError {
        if crate::db::is_unavailable(&error) {
            AdminError::Unavailable(error)
        } else {
            AdminError::Unexpected(error)
        }
    }
}

impl From<diesel::result::Error> for AdminError {
    fn from(error: diesel::result::Error) -> AdminError {
        AdminError::from(anyhow::Error::from(error))
    }
}

impl ResponseError for AdminError {
    fn status_code(&self) -> StatusCode {
        match self {
            AdminError::SignIn { .. } | AdminError::SecondFactor => StatusCode::SEE_OTHER,
            AdminError::Forbidden(_) => StatusCode::FORBIDDEN,
            AdminError::NotFound(_) => StatusCode::NOT_FOUND,
            AdminError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AdminError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            AdminError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AdminError::Unexpected(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let (title, message) = match self {
            AdminError::SignIn { next } => {
                let location = if next.is_empty() || next == "/admin" {
                    "/admin/login".to_string()
                } else {
                    format!(
                        "/admin/login?{}",
                        serde_urlencoded::to_string([("next", next)]).unwrap_or_default()
                    )
                };
                return super::see_other(&location);
            }
            AdminError::SecondFactor => return super::see_other("/admin/login/code"),
            AdminError::Forbidden(why) => ("Not allowed", why.clone()),
            AdminError::NotFound(what) => ("Not found", what.clone()),
            AdminError::BadRequest(why) => ("That did not work", why.clone()),
            AdminError::RateLimited(seconds) => (
                "Too many attempts",
                format!(
                    "There were too many sign-in attempts. Please wait {} and try again.",
                    wait_in_words(*seconds)
                ),
            ),
            AdminError::Unavailable(e) => {
                tracing::warn!(
                    error = format!("{e:#}"),
                    "database unavailable: answered 503"
                );
                (
                    "Busy",
                    "The database is busy just now and nothing was changed. Please try again in a few seconds.".into(),
                )
            }
            AdminError::Unexpected(e) => {
                tracing::error!(error = format!("{e:#}"), "staff page failed");
                (
                    "Something went wrong",
                    "Something went wrong on our side and nothing was changed. The details are in the service's log.".into(),
                )
            }
        };
        let mut response = super::page_headers(self.status_code());
        match self {
            AdminError::RateLimited(seconds) => {
                response.insert_header(("Retry-After", seconds.to_string()));
            }
            AdminError::Unavailable(_) => {
                response.insert_header(("Retry-After", "5"));
            }
            _ => {}
        }
        response.body(error_page(title, &message))
    }
}

/// "40 seconds", "3 minutes".
pub fn wait_in_words(seconds: u64) -> String {
    match seconds {
        0..=1 => "a second".into(),
        2..=90 => format!("{seconds} seconds"),
        _ => format!("{} minutes", seconds.div_ceil(60)),
    }
}

/// A page without the template engine, so an error can always be shown.
fn error_page(title: &str, message: &str) -> String {
    let title = html_escape::encode_text(title);
    let message = html_escape::encode_text(message);
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex\"><title>{title} · Staff</title>\
         <link rel=\"stylesheet\" href=\"/admin/static/admin.css\"></head><body class=\"bare\">\
         <main id=\"main\" class=\"narrow\"><div class=\"card\"><h1>{title}</h1><p>{message}</p>\
         <p><a href=\"/admin\">Back to the dashboard</a></p></div></main></body></html>"
    )
}
