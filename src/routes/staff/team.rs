//! Staff and tokens: who may sign in (add with a one-time setup link, remove) and the API
//! tokens for scripts (create, shown once; revoke).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;

use super::{AdminError, Change, Signed, render_status, see_other};
use crate::db::staff::{
    AddStaffError, StaffMember, add_staff, list_staff, log_activity, remove_staff,
};
use crate::db::staff_tokens::{
    StaffToken, create_staff_token, list_staff_tokens, revoke_staff_token,
};
use crate::domain::SubscriberEmail;
use crate::startup::AppState;

#[derive(Serialize)]
struct MemberRow {
    #[serde(flatten)]
    member: StaffMember,
    state: &'static str,
    added: String,
    is_me: bool,
}

#[derive(Serialize)]
struct TokenRow {
    #[serde(flatten)]
    token: StaffToken,
    created: String,
    last_used: String,
}

#[derive(Serialize, Default)]
struct TeamPage {
    members: Vec<MemberRow>,
    tokens: Vec<TokenRow>,
    /// Just added: the setup link for them, shown this once.
    setup_link: Option<String>,
    setup_for: Option<String>,
    /// Just created: the token, shown this once.
    new_token: Option<String>,
    new_token_name: Option<String>,
    staff_error: Option<String>,
    token_error: Option<String>,
    email: String,
    name: String,
}

async fn team_page(
    signed: &Signed,
    request: &HttpRequest,
    state: &AppState,
    mut page: TeamPage,
    status: StatusCode,
) -> Result<HttpResponse, AdminError> {
    let (members, tokens) = state
        .db
        .run(|conn| Ok((list_staff(conn)?, list_staff_tokens(conn)?)))
        .await?;
    let me = signed.member.id;
    page.members = members
        .into_iter()
        .map(|m| MemberRow {
            state: m.state(),
            added: m.created_at.format("%Y-%m-%d").to_string(),
            is_me: m.id == me,
            member: m,
        })
        .collect();
    page.tokens = tokens
        .into_iter()
        .filter(|t| t.revoked_at.is_none())
        .map(|t| TokenRow {
            created: t.created_at.format("%Y-%m-%d").to_string(),
            last_used: t
                .last_used_at
                .map(|d| d.format("%Y-%m-%d %H:%M").to_string())
                .unwrap_or_else(|| "never".into()),
            token: t,
        })
        .collect();
    render_status(
        state,
        Some(signed),
        request,
        "staff.html",
        "staff",
        "Staff and tokens",
        status,
        page,
    )
}

pub async fn page(
    signed: Signed,
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    team_page(
        &signed,
        &request,
        &state,
        TeamPage::default(),
        StatusCode::OK,
    )
    .await
}

pub async fn add(
    change: Change,
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    let Change { staff, form } = change;
    let (email, name) = (form.get("email").to_string(), form.get("name").to_string());
    let refused = |message: String| TeamPage {
        staff_error: Some(message),
        email: email.clone(),
        name: name.clone(),
        ..TeamPage::default()
    };
    let address = match SubscriberEmail::parse(&email) {
        Ok(address) => address.as_str().to_string(),
        Err(e) => {
            let page = refused(format!("That is not an email address we can use: {e}."));
            return team_page(
                &staff,
                &request,
                &state,
                page,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
    };
    if name.chars().count() > 100 {
        let page = refused("A name can have at most 100 characters.".into());
        return team_page(
            &staff,
            &request,
            &state,
            page,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    let actor = staff.actor();
    let named = (!name.is_empty()).then(|| name.clone());
    let added = state
        .db
        .run(move |conn| {
            let added = add_staff(conn, &address, named.as_deref(), None);
            if let Ok((member, _)) = &added {
                log_activity(conn, &actor, "added staff member", &member.label())?;
            }
            Ok(added)
        })
        .await?;
    match added {
        Ok((member, Some(token))) => {
            let page = TeamPage {
                setup_link: Some(format!(
                    "{}/admin/setup?token={}",
                    state.settings.base_url(),
                    token.as_str()
                )),
                setup_for: Some(member.email),
                ..TeamPage::default()
            };
            team_page(&staff, &request, &state, page, StatusCode::OK).await
        }
        Ok((_, None)) => Ok(see_other("/admin/staff")),
        Err(AddStaffError::Exists(_)) => {
            let page = refused(format!("{email} already has a staff account."));
            team_page(&staff, &request, &state, page, StatusCode::CONFLICT).await
        }
        Err(AddStaffError::Unexpected(e)) => Err(e.into()),
    }
}

pub async fn remove(
    change: Change,
    id: web::Path<i64>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    let id = id.into_inner();
    if id == change.staff.member.id {
        return Err(AdminError::Forbidden(
            "You cannot remove your own account here; ask a colleague, or use `newsletter staff remove` on the server.".into(),
        ));
    }
    let actor = change.staff.actor();
    let removed = state
        .db
        .run(move |conn| {
            let removed = remove_staff(conn, id)?;
            if let Some(m) = &removed {
                log_activity(conn, &actor, "removed staff member", &m.label())?;
            }
            Ok(removed)
        })
        .await?;
    removed.ok_or_else(|| AdminError::NotFound("That staff member was removed already.".into()))?;
    Ok(see_other("/admin/staff?done=staff-removed"))
}

pub async fn create_token(
    change: Change,
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    let Change { staff, form } = change;
    let name = form.get("token_name").to_string();
    let actor = staff.actor();
    let created = state
        .db
        .run(move |conn| {
            let created = create_staff_token(conn, &name);
            if created.is_ok() {
                log_activity(conn, &actor, "created token", &name)?;
            }
            Ok(created.map(|t| (name, t)))
        })
        .await?;
    let page = match created {
        Ok((name, token)) => TeamPage {
            new_token: Some(token.as_str().to_string()),
            new_token_name: Some(name),
            ..TeamPage::default()
        },
        Err(e) => {
            let page = TeamPage {
                token_error: Some(super::articles::sentence(&e.to_string())),
                ..TeamPage::default()
            };
            return team_page(
                &staff,
                &request,
                &state,
                page,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
    };
    team_page(&staff, &request, &state, page, StatusCode::OK).await
}

pub async fn revoke_token(
    change: Change,
    id: web::Path<i64>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    let id = id.into_inner();
    let actor = change.staff.actor();
    let revoked = state
        .db
        .run(move |conn| {
            let Some(token) = list_staff_tokens(conn)?.into_iter().find(|t| t.id == id) else {
                return Ok(false);
            };
            let revoked = revoke_staff_token(conn, &token.name)?;
            if revoked {
                log_activity(conn, &actor, "revoked token", &token.name)?;
            }
            Ok(revoked)
        })
        .await?;
    if !revoked {
        return Err(AdminError::NotFound(
            "That token does not exist or was revoked already.".into(),
        ));
    }
    Ok(see_other("/admin/staff?done=token-revoked"))
}
