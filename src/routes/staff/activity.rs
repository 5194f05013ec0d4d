//! The activity log: who did what and when, newest first.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::{AdminError, Signed, render, thousands};
use crate::db::staff::{Activity, list_activity};
use crate::startup::AppState;

const PER_PAGE: i64 = 100;

#[derive(Deserialize)]
pub struct PageQuery {
    page: Option<i64>,
}

#[derive(Serialize)]
struct Entry {
    #[serde(flatten)]
    activity: Activity,
    when: String,
}

pub async fn page(
    signed: Signed,
    request: HttpRequest,
    query: web::Query<PageQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    let page = query.page.unwrap_or(1).clamp(1, 100_000);
    let (entries, total) = state
        .db
        .run(move |conn| Ok(list_activity(conn, page, PER_PAGE)?))
        .await?;
    let entries: Vec<Entry> = entries
        .into_iter()
        .map(|a| Entry {
            when: crate::db::staff_time(a.created_at),
            activity: a,
        })
        .collect();
    let context = serde_json::json!({
        "entries": entries,
        "total": thousands(total),
        "page": page,
        "next_page": (page * PER_PAGE < total).then_some(page + 1),
        "previous_page": (page > 1).then_some(page - 1),
    });
    render(
        &state,
        Some(&signed),
        &request,
        "activity.html",
        "activity",
        "Activity",
        context,
    )
}
