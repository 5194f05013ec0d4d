//! Forms of the staff pages: the body as name → values (checkboxes repeat a name), and
//! [`Change`], which lets a POST through only with the session's CSRF token and from a page of
//! ours.

use std::future::Future;
use std::pin::Pin;

use actix_web::http::header::{HOST, ORIGIN, REFERER};
use actix_web::{FromRequest, HttpRequest, web};

use super::{AdminError, Signed};
use crate::startup::AppState;

/// A parsed `application/x-www-form-urlencoded` body.
#[derive(Debug, Default, Clone)]
pub struct FormData {
    pairs: Vec<(String, String)>,
}

impl FormData {
    pub fn parse(body: &[u8]) -> FormData {
        FormData {
            pairs: url::form_urlencoded::parse(body).into_owned().collect(),
        }
    }

    /// The first value of `name`, trimmed ("" when absent).
    pub fn get(&self, name: &str) -> &str {
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.trim())
            .unwrap_or("")
    }

    /// The value as typed (a password keeps its spaces).
    pub fn raw(&self, name: &str) -> &str {
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    /// Every value of `name` (ticked checkboxes).
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn has(&self, name: &str) -> bool {
        self.pairs.iter().any(|(n, _)| n == name)
    }
}

/// A change made by a signed-in person: the POST's form, checked for the session's CSRF token
/// and, when the browser names one, our own origin. Anything else gets 403 before the handler
/// runs, so nothing changes.
pub struct Change {
    pub staff: Signed,
    pub form: FormData,
}

impl FromRequest for Change {
    type Error = AdminError;
    type Future = Pin<Box<dyn Future<Output = Result<Change, AdminError>>>>;

    fn from_request(request: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let signed = Signed::from_request(request, payload);
        let body = web::Bytes::from_request(request, payload);
        let request = request.clone();
        Box::pin(async move {
            // The body first, also for a refusal: a response sent before the body was read
            // would leave it on the connection, and the browser's next request on that
            // connection would fail.
            let body = body
                .await
                .map_err(|e| AdminError::BadRequest(format!("The form could not be read: {e}")))?;
            let staff = signed.await?;
            check_origin(&request)?;
            let form = FormData::parse(&body);
            staff.check_csrf(form.get("csrf"))?;
            Ok(Change { staff, form })
        })
    }
}

/// Refuses a request whose `Origin` (or, without one, `Referer`) is another site: the browser
/// says where a form was posted from, and only our own pages may post here.
pub fn check_origin(request: &HttpRequest) -> Result<(), AdminError> {
    let headers = request.headers();
    let claimed = headers
        .get(ORIGIN)
        .or_else(|| headers.get(REFERER))
        .and_then(|v| v.to_str().ok());
    let Some(claimed) = claimed else {
        return Ok(());
    };
    let Ok(claimed) = url::Url::parse(claimed) else {
        return Err(foreign());
    };
    let claimed_origin = claimed.origin().ascii_serialization();
    let state = request.app_data::<web::Data<AppState>>();
    let ours = state
        .and_then(|s| url::Url::parse(s.settings.base_url()).ok())
        .map(|u| u.origin().ascii_serialization());
    if ours.as_deref() == Some(claimed_origin.as_str()) {
        return Ok(());
    }
    // The address the browser used to reach us (a test server on a free port, an admin on
    // the internal name): a browser sends the Host it connected to, and a page of another site
    // cannot make it send ours with its own origin.
    let host = headers.get(HOST).and_then(|v| v.to_str().ok());
    if let (Some(host), Some(claimed_host)) = (host, claimed.host_str()) {
        let claimed_authority = match claimed.port() {
            Some(port) => format!("{claimed_host}:{port}"),
            None => claimed_host.to_string(),
        };
        if claimed_authority.eq_ignore_ascii_case(host) {
            return Ok(());
        }
    }
    Err(foreign())
}

fn foreign() -> AdminError {
    AdminError::Forbidden(
        "This form was sent from another site, so nothing was changed. Use the staff pages themselves."
            .into(),
    )
}
