//! Automations: the digests that make themselves from the site's feed. Staff see each one's
//! schedule in words, when it runs next on the clinic's clock and what its last run did; they
//! add one, run one now, or remove one.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;

use super::articles::sentence;
use super::{AdminError, Change, Signed, render_status, see_other};
use crate::automations::{AutomationInput, parse_automation, schedule_in_words};
use crate::db::automations::{
    Automation, delete_automation, find_automation, insert_automation, list_automations,
};
use crate::db::staff::log_activity;
use crate::startup::AppState;

#[derive(Serialize)]
struct Row {
    #[serde(flatten)]
    automation: Automation,
    when: String,
    next_run: String,
    last_run: String,
}

#[derive(Serialize, Default)]
struct Form {
    feed_url: String,
    schedule: String,
    subject: String,
    mode: String,
    notify: String,
}

#[derive(Serialize)]
struct ListPage {
    automations: Vec<Row>,
    timezone: String,
    form: Form,
    error: Option<String>,
}

/// A UTC time on the clinic's clock: `Mon 7 December 2026, 09:00`.
fn on_clinic_clock(at: chrono::NaiveDateTime, zone: chrono_tz::Tz) -> String {
    crate::configuration::on_clock(at, zone)
        .format("%a %-d %B %Y, %H:%M")
        .to_string()
}

async fn list_page(
    signed: &Signed,
    request: &HttpRequest,
    state: &AppState,
    form: Form,
    error: Option<String>,
    status: StatusCode,
) -> Result<HttpResponse, AdminError> {
    let zone = state.settings.site.tz();
    let automations = state
        .db
        .run(|conn| Ok(list_automations(conn)?))
        .await?
        .into_iter()
        .map(|automation| Row {
            when: schedule_in_words(&automation.schedule),
            next_run: on_clinic_clock(automation.next_run_at, zone),
            last_run: automation
                .last_run_at
                .map(|at| on_clinic_clock(at, zone))
                .unwrap_or_default(),
            automation,
        })
        .collect();
    let page = ListPage {
        automations,
        timezone: zone.to_string(),
        form,
        error,
    };
    render_status(
        state,
        Some(signed),
        request,
        "automations.html",
        "automations",
        "Automations",
        status,
        page,
    )
}

pub async fn list(
    signed: Signed,
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    let form = Form {
        schedule: "0 9 * * MON".into(),
        subject: "Latest research: {{ date }}".into(),
        mode: "draft".into(),
        ..Form::default()
    };
    list_page(&signed, &request, &state, form, None, StatusCode::OK).await
}

pub async fn create(
    change: Change,
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    let Change { staff, form } = change;
    let typed = Form {
        feed_url: form.get("feed_url").to_string(),
        schedule: form.get("schedule").to_string(),
        subject: form.get("subject").to_string(),
        mode: form.get("mode").to_string(),
        notify: form.get("notify").to_string(),
    };
    let notify: Vec<String> = typed
        .notify
        .split([',', ' ', '\n'])
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_string)
        .collect();
    let input = AutomationInput {
        feed_url: typed.feed_url.clone(),
        schedule: typed.schedule.clone(),
        subject: typed.subject.clone(),
        mode: typed.mode.clone(),
        notify: Some(notify),
    };
    let new = match parse_automation(&input, state.settings.site.tz(), crate::db::now()) {
        Ok(new) => new,
        Err(error) => {
            let error = Some(sentence(&error));
            let status = StatusCode::UNPROCESSABLE_ENTITY;
            return list_page(&staff, &request, &state, typed, error, status).await;
        }
    };
    let actor = staff.actor();
    state
        .db
        .run(move |conn| {
            let automation = insert_automation(conn, &new)?;
            let detail = format!("{} ({})", automation.feed_url, automation.id);
            log_activity(conn, &actor, "added automation", &detail)?;
            Ok(())
        })
        .await?;
    Ok(see_other("/admin/automations?done=automation-added"))
}

/// Runs one now; its outcome shows in the list.
pub async fn run(
    change: Change,
    id: web::Path<i64>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    let id = id.into_inner();
    let automation = state
        .db
        .run(move |conn| Ok(find_automation(conn, id)?))
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("There is no automation {id}.")))?;
    let outcome = state.automations.run(&automation).await?;
    let (actor, detail) = (change.staff.actor(), format!("{id}: {}", outcome.outcome));
    state
        .db
        .run(move |conn| Ok(log_activity(conn, &actor, "ran automation", &detail)?))
        .await?;
    Ok(see_other("/admin/automations?done=automation-ran"))
}

pub async fn delete(
    change: Change,
    id: web::Path<i64>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    let id = id.into_inner();
    let actor = change.staff.actor();
    let deleted = state
        .db
        .run(move |conn| {
            let deleted = delete_automation(conn, id)?;
            if deleted {
                log_activity(conn, &actor, "removed automation", &id.to_string())?;
            }
            Ok(deleted)
        })
        .await?;
    if !deleted {
        return Err(AdminError::NotFound(format!(
            "There is no automation {id}."
        )));
    }
    Ok(see_other("/admin/automations?done=automation-removed"))
}
