//! Signing in and out, the second factor, and the one-time setup link where a new staff member
//! chooses a password.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::account::totp_of;
use super::auth::{check_csrf, session_cookie, session_of};
use super::form::check_origin;
use super::{AdminError, FormData, render, render_status, see_other};
use crate::db::staff::{
    Actor, complete_second_factor, complete_setup, count_staff, create_session, end_session,
    find_staff_by_email, find_staff_by_setup_token, log_activity, use_recovery_code, use_totp_step,
};
use crate::domain::Token;
use crate::domain::password::{check_new_password, hash_password, verify_password};
use crate::startup::AppState;

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// Where to go after signing in: only a page of ours.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with("/admin") && !n.starts_with("//") && !n.contains('\\') => {
            n.to_string()
        }
        _ => "/admin".to_string(),
    }
}

#[derive(Serialize, Default)]
struct LoginPage {
    email: String,
    error: Option<String>,
    next: String,
    /// A fresh install: nobody can sign in yet, and the page says how to begin.
    no_staff_yet: bool,
}

pub async fn page(
    request: HttpRequest,
    query: web::Query<NextQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    if let Some((session, _)) = session_of(&request, &state).await? {
        return Ok(see_other(if session.second_factor_pending {
            "/admin/login/code"
        } else {
            "/admin"
        }));
    }
    let no_staff_yet = state.db.run(|conn| Ok(count_staff(conn)?)).await? == 0;
    let page = LoginPage {
        next: safe_next(query.next.as_deref()),
        no_staff_yet,
        ..LoginPage::default()
    };
    render(
        &state,
        None,
        &request,
        "login.html",
        "login",
        "Sign in",
        page,
    )
}

pub async fn submit(
    request: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    check_origin(&request)?;
    let form = FormData::parse(&body);
    let email = form.get("email").to_string();
    let next = safe_next(Some(form.get("next")));
    let client = crate::routes::client_ip(&request, &state);
    if let Err(wait) = state.login_limiter.check(&email, &client) {
        tracing::warn!(client = %client, "sign-in attempts over the limit");
        return Err(AdminError::RateLimited(wait));
    }
    let password = SecretString::from(form.raw("password").to_string());
    let lookup = email.clone();
    let member = state
        .db
        .run(move |conn| Ok(find_staff_by_email(conn, &lookup)?))
        .await?;
    let stored = member.as_ref().and_then(|m| m.password_hash.clone());
    // Always one Argon2 verification, against a dummy hash when there is no such account.
    let matches =
        tokio::task::spawn_blocking(move || verify_password(&password, stored.as_deref()))
            .await
            .map_err(|e| AdminError::Unexpected(e.into()))?;
    let member = match member {
        Some(member) if matches => member,
        _ => {
            let page = LoginPage {
                email,
                no_staff_yet: false,
                error: Some("That email address and password do not match an account. Check both and try again.".into()),
                next,
            };
            return render_status(
                &state,
                None,
                &request,
                "login.html",
                "login",
                "Sign in",
                StatusCode::UNAUTHORIZED,
                page,
            );
        }
    };
    let pending = member.totp_secret.is_some();
    let user_agent = request
        .headers()
        .get(actix_web::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| ua.chars().take(300).collect::<String>());
    let actor = Actor::staff(&member, Some(client));
    let staff_id = member.id;
    let token = state
        .db
        .run(move |conn| {
            let token = create_session(
                conn,
                staff_id,
                pending,
                actor.ip.as_deref(),
                user_agent.as_deref(),
            )?;
            if !pending {
                log_activity(conn, &actor, "signed in", "")?;
            }
            Ok(token)
        })
        .await?;
    let location = if pending {
        format!(
            "/admin/login/code?{}",
            serde_urlencoded::to_string([("next", &next)]).unwrap_or_default()
        )
    } else {
        next
    };
    Ok(HttpResponse::SeeOther()
        .cookie(session_cookie(&state, token.as_str()))
        .insert_header(("Location", location))
        .finish())
}

#[derive(Serialize)]
struct CodePage {
    error: Option<String>,
    next: String,
}

pub async fn code_page(
    request: HttpRequest,
    query: web::Query<NextQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    match session_of(&request, &state).await? {
        Some((session, _)) if session.second_factor_pending => {}
        Some(_) => return Ok(see_other("/admin")),
        None => return Ok(see_other("/admin/login")),
    }
    let page = CodePage {
        error: None,
        next: safe_next(query.next.as_deref()),
    };
    render(
        &state,
        None,
        &request,
        "login_code.html",
        "login",
        "Enter your sign-in code",
        page,
    )
}

pub async fn code_submit(
    request: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    check_origin(&request)?;
    let form = FormData::parse(&body);
    let next = safe_next(Some(form.get("next")));
    let Some((session, member)) = session_of(&request, &state).await? else {
        return Ok(see_other("/admin/login"));
    };
    if !session.second_factor_pending {
        return Ok(see_other("/admin"));
    }
    let client = crate::routes::client_ip(&request, &state);
    if let Err(wait) = state.login_limiter.check(&member.email, &client) {
        return Err(AdminError::RateLimited(wait));
    }
    let code: String = form
        .get("code")
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let step = member
        .totp_secret
        .as_deref()
        .and_then(|secret| totp_of(secret, &member.email).ok())
        .filter(|_| code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|totp| totp.check_current(&code));
    let (staff_id, session_id) = (member.id, session.id);
    let actor = Actor::staff(&member, Some(client));
    let recovery = code.clone();
    let outcome = state
        .db
        .run(move |conn| {
            let by_app = match step {
                Some(step) => use_totp_step(conn, staff_id, step as i64)?,
                None => false,
            };
            let how = if by_app {
                "signed in"
            } else if use_recovery_code(conn, staff_id, &recovery)? {
                "signed in with a recovery code"
            } else {
                return Ok(None);
            };
            let token = complete_second_factor(conn, session_id)?;
            log_activity(conn, &actor, how, "")?;
            Ok(Some(token))
        })
        .await?;
    match outcome {
        Some(token) => Ok(HttpResponse::SeeOther()
            .cookie(session_cookie(&state, token.as_str()))
            .insert_header(("Location", next))
            .finish()),
        None => {
            let page = CodePage {
                error: Some("That code is not right. Enter the six digits your authenticator app shows now, or one of your recovery codes.".into()),
                next,
            };
            render_status(
                &state,
                None,
                &request,
                "login_code.html",
                "login",
                "Enter your sign-in code",
                StatusCode::UNAUTHORIZED,
                page,
            )
        }
    }
}

pub async fn logout(
    request: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    check_origin(&request)?;
    let form = FormData::parse(&body);
    if let Some((session, member)) = session_of(&request, &state).await? {
        // A pending session has no page with a token yet; a full one must present its own.
        if !session.second_factor_pending {
            check_csrf(&session.csrf_token, form.get("csrf"))?;
        }
        let actor = Actor::staff(&member, Some(crate::routes::client_ip(&request, &state)));
        state
            .db
            .run(move |conn| {
                end_session(conn, session.id)?;
                log_activity(conn, &actor, "signed out", "")?;
                Ok(())
            })
            .await?;
    }
    Ok(HttpResponse::SeeOther()
        .cookie(session_cookie(&state, ""))
        .insert_header(("Location", "/admin/login"))
        .finish())
}

#[derive(Deserialize)]
pub struct SetupQuery {
    token: Option<String>,
}

#[derive(Serialize)]
struct SetupPage {
    token: String,
    email: String,
    name: Option<String>,
    error: Option<String>,
}

pub async fn setup_page(
    request: HttpRequest,
    query: web::Query<SetupQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    let token = query
        .token
        .as_deref()
        .and_then(Token::parse)
        .ok_or_else(expired_link)?;
    let lookup = token.clone();
    let member = state
        .db
        .run(move |conn| Ok(find_staff_by_setup_token(conn, &lookup)?))
        .await?
        .ok_or_else(expired_link)?;
    let page = SetupPage {
        token: token.as_str().to_string(),
        email: member.email,
        name: member.name,
        error: None,
    };
    render(
        &state,
        None,
        &request,
        "setup.html",
        "login",
        "Choose your password",
        page,
    )
}

fn expired_link() -> AdminError {
    AdminError::NotFound(
        "This setup link does not work: it was used already, it is older than 24 hours, or it was copied incompletely. Ask a colleague to add you again with `newsletter staff add` or on the Staff page.".into(),
    )
}

pub async fn setup_submit(
    request: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    check_origin(&request)?;
    let form = FormData::parse(&body);
    let token = Token::parse(form.get("token")).ok_or_else(expired_link)?;
    let lookup = token.clone();
    let member = state
        .db
        .run(move |conn| Ok(find_staff_by_setup_token(conn, &lookup)?))
        .await?
        .ok_or_else(expired_link)?;
    let password = form.raw("password").to_string();
    let problem = check_new_password(&password).err().or_else(|| {
        (password != form.raw("password_again")).then(|| {
            "The two passwords are not the same. Type the same password twice.".to_string()
        })
    });
    if let Some(problem) = problem {
        let page = SetupPage {
            token: token.as_str().to_string(),
            email: member.email,
            name: member.name,
            error: Some(problem),
        };
        return render_status(
            &state,
            None,
            &request,
            "setup.html",
            "login",
            "Choose your password",
            StatusCode::UNPROCESSABLE_ENTITY,
            page,
        );
    }
    let secret = SecretString::from(password);
    let hash = tokio::task::spawn_blocking(move || hash_password(&secret))
        .await
        .map_err(|e| AdminError::Unexpected(e.into()))??;
    let client = crate::routes::client_ip(&request, &state);
    let done = state
        .db
        .run(move |conn| {
            let done = complete_setup(conn, &token, &hash)?;
            if let Some(member) = &done {
                log_activity(
                    conn,
                    &Actor::staff(member, Some(client)),
                    "set password",
                    "",
                )?;
            }
            Ok(done)
        })
        .await?;
    done.ok_or_else(expired_link)?;
    Ok(see_other("/admin/login?done=password-set"))
}
