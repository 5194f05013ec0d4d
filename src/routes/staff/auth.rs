//! Who is signed in: the session cookie (only its hash is stored), the CSRF token that comes
//! with the session, and the sign-in rate limits.

use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::time::Duration;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::{FromRequest, HttpRequest, web};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::AdminError;
use crate::db::staff::{Actor, StaffMember, StaffSession, find_session};
use crate::startup::AppState;

pub const SESSION_COOKIE: &str = "newsletter_staff";

/// A request from a signed-in staff member.
pub struct Signed {
    pub member: StaffMember,
    pub session_id: i64,
    pub csrf: String,
    /// The client address, for the activity log.
    pub ip: String,
}

impl Signed {
    /// Refuses a form whose CSRF token is not this session's.
    pub fn check_csrf(&self, presented: &str) -> Result<(), AdminError> {
        check_csrf(&self.csrf, presented)
    }

    /// This person, for the activity log.
    pub fn actor(&self) -> Actor {
        Actor::staff(&self.member, Some(self.ip.clone()))
    }
}

/// Refuses a form whose CSRF token is not `expected`, the session's.
pub fn check_csrf(expected: &str, presented: &str) -> Result<(), AdminError> {
    if constant_time_eq(presented.as_bytes(), expected.as_bytes()) {
        Ok(())
    } else {
        Err(AdminError::Forbidden(
            "This form has expired or did not come from the staff pages, so nothing was changed. Go back, reload the page and try again."
                .into(),
        ))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The session named by the request's cookie, pending second factor or not.
pub async fn session_of(
    request: &HttpRequest,
    state: &AppState,
) -> Result<Option<(StaffSession, StaffMember)>, AdminError> {
    let Some(cookie) = request.cookie(SESSION_COOKIE) else {
        return Ok(None);
    };
    let value = cookie.value().to_string();
    if value.len() != 64 {
        return Ok(None);
    }
    let idle = chrono::Duration::minutes(state.settings.admin.session_idle_minutes as i64);
    Ok(state
        .db
        .run(move |conn| Ok(find_session(conn, &value, idle)?))
        .await?)
}

impl FromRequest for Signed {
    type Error = AdminError;
    type Future = Pin<Box<dyn Future<Output = Result<Signed, AdminError>>>>;

    fn from_request(request: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let request = request.clone();
        Box::pin(async move {
            let next = match request.method() {
                &actix_web::http::Method::GET => {
                    let q = request.query_string();
                    if q.is_empty() {
                        request.path().to_string()
                    } else {
                        format!("{}?{q}", request.path())
                    }
                }
                _ => String::new(),
            };
            let Some(state) = request.app_data::<web::Data<AppState>>().cloned() else {
                return Err(AdminError::SignIn { next });
            };
            match session_of(&request, &state).await? {
                None => Err(AdminError::SignIn { next }),
                Some((session, _)) if session.second_factor_pending => {
                    Err(AdminError::SecondFactor)
                }
                Some((session, member)) => Ok(Signed {
                    member,
                    session_id: session.id,
                    csrf: session.csrf_token,
                    ip: crate::routes::client_ip(&request, &state),
                }),
            }
        })
    }
}

/// The session cookie for `value` (an empty value with no lifetime signs out).
pub fn session_cookie(state: &AppState, value: &str) -> Cookie<'static> {
    let secure = state.settings.base_url().starts_with("https://");
    let mut cookie = Cookie::build(SESSION_COOKIE, value.to_string())
        .path("/admin")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
        .finish();
    if value.is_empty() {
        cookie.make_removal();
    }
    cookie
}

/// Sign-in attempts per address and per client address (GCRA: a burst up to the limit, then
/// one more every 15 minutes / limit).
pub struct LoginLimiter {
    by_address: DefaultKeyedRateLimiter<String>,
    by_client: DefaultKeyedRateLimiter<String>,
}

impl LoginLimiter {
    pub fn per_15_minutes(limit: u32) -> LoginLimiter {
        let burst = NonZeroU32::new(limit).unwrap_or(NonZeroU32::MIN);
        let period = Duration::from_secs(15 * 60) / burst.get();
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_minute(burst))
            .allow_burst(burst);
        LoginLimiter {
            by_address: RateLimiter::keyed(quota),
            by_client: RateLimiter::keyed(quota),
        }
    }

    /// `Err(seconds to wait)` when this address or this client has tried too often.
    pub fn check(&self, address: &str, client: &str) -> Result<(), u64> {
        let wait = |not_until: governor::NotUntil<_>| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        };
        self.by_client
            .check_key(&client.to_string())
            .map_err(wait)?;
        self.by_address
            .check_key(&address.to_lowercase())
            .map_err(wait)
    }

    pub fn forget_quiet(&self) {
        self.by_address.retain_recent();
        self.by_client.retain_recent();
    }
}
