//! One error body for the JSON API (`{"error": "..."}`) and friendly pages for visitors.
//! Unexpected failures are logged with their whole cause chain and shown as an opaque 500.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("missing or invalid staff token")]
    Unauthorized,
    #[error("request body is larger than {0} bytes")]
    TooLarge(usize),
    #[error("the request body did not arrive within {} seconds", super::BODY_READ_TIMEOUT.as_secs())]
    BodyTimeout,
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    BadGateway(String),
    #[error("too many requests; try again in {0} seconds")]
    RateLimited(u64),
    #[error("the service is busy; please try again in a few seconds")]
    Unavailable(#[source] anyhow::Error),
    #[error("something went wrong on our side")]
    Unexpected(anyhow::Error),
}

/// How long a client should wait after a 503, in seconds.
pub const UNAVAILABLE_RETRY_AFTER: u64 = 5;

impl From<anyhow::Error> for ApiError {
    fn from(error: anyhow::Error) -> ApiError {
        if crate::db::is_unavailable(&error) {
            ApiError::Unavailable(error)
        } else {
            ApiError::Unexpected(error)
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            ApiError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Unexpected(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            ApiError::Unexpected(e) => tracing::error!(error = format!("{e:#}"), "request failed"),
            ApiError::Unavailable(e) => {
                tracing::warn!(
                    error = format!("{e:#}"),
                    "database unavailable: answered 503"
                )
            }
            _ => {}
        }
        let mut response = HttpResponse::build(self.status_code());
        match self {
            ApiError::RateLimited(seconds) => {
                response.insert_header(("Retry-After", seconds.to_string()));
            }
            ApiError::Unavailable(_) => {
                response.insert_header(("Retry-After", UNAVAILABLE_RETRY_AFTER.to_string()));
            }
            _ => {}
        }
        if let ApiError::Unauthorized = self {
            response.insert_header(("WWW-Authenticate", "Bearer"));
        }
        response.json(serde_json::json!({ "error": self.to_string() }))
    }
}

/// A visitor-facing failure: rendered as a page of the site.
#[derive(Debug, thiserror::Error)]
#[error("{0:#}")]
pub struct PageError(#[from] pub anyhow::Error);

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        StatusCode::INTERNAL_SERVER_ERROR
    }

    /// Bare: [`super::error_pages`] answers with the site's page (or JSON for a client).
    fn error_response(&self) -> HttpResponse {
        tracing::error!(error = format!("{:#}", self.0), "page failed");
        HttpResponse::InternalServerError().finish()
    }
}
