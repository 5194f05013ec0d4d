//! Automations for scripts: `POST /admin/api/automations` makes one, `GET` lists them,
//! `DELETE /admin/api/automations/{id}` removes one, `POST /admin/api/automations/{id}/run`
//! runs one now and answers what it did.

use actix_web::{HttpResponse, web};
use serde::Serialize;

use super::Staff;
use crate::automations::{AutomationInput, parse_automation, schedule_in_words};
use crate::db::automations::{
    Automation, delete_automation, find_automation, insert_automation, list_automations,
};
use crate::routes::ApiError;
use crate::startup::AppState;

/// An automation with its schedule in words.
#[derive(Serialize)]
pub struct AutomationView {
    #[serde(flatten)]
    automation: Automation,
    /// "At 09:00 on Monday", read in `timezone`.
    schedule_description: String,
    timezone: String,
}

impl AutomationView {
    pub fn of(automation: Automation, zone: chrono_tz::Tz) -> AutomationView {
        AutomationView {
            schedule_description: schedule_in_words(&automation.schedule),
            automation,
            timezone: zone.to_string(),
        }
    }
}

pub async fn create_automation(
    staff: Staff,
    body: web::Json<AutomationInput>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let zone = state.settings.site.tz();
    let new = parse_automation(&body, zone, crate::db::now()).map_err(ApiError::Invalid)?;
    let automation = state
        .db
        .run(move |conn| insert_automation(conn, &new))
        .await?;
    tracing::info!(staff = %staff.name, automation = automation.id, "automation created");
    Ok(HttpResponse::Created().json(AutomationView::of(automation, zone)))
}

pub async fn list(_staff: Staff, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let zone = state.settings.site.tz();
    let automations: Vec<AutomationView> = state
        .db
        .run(|conn| Ok(list_automations(conn)?))
        .await?
        .into_iter()
        .map(|a| AutomationView::of(a, zone))
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "automations": automations })))
}

pub async fn remove(
    staff: Staff,
    id: web::Path<i64>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    if !state
        .db
        .run(move |conn| Ok(delete_automation(conn, id)?))
        .await?
    {
        return Err(ApiError::NotFound(format!(
            "automation {id} does not exist"
        )));
    }
    tracing::info!(staff = %staff.name, automation = id, "automation removed");
    Ok(HttpResponse::NoContent().finish())
}

/// Runs it now, whatever its schedule says (its next scheduled run stays as it was).
pub async fn run_now(
    staff: Staff,
    id: web::Path<i64>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let automation = state
        .db
        .run(move |conn| Ok(find_automation(conn, id)?))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("automation {id} does not exist")))?;
    let outcome = state.automations.run(&automation).await?;
    tracing::info!(staff = %staff.name, automation = id, result = outcome.result, "automation run by staff");
    Ok(HttpResponse::Ok().json(outcome))
}
