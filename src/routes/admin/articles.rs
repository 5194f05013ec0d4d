//! `POST /admin/api/articles` and `GET /admin/api/articles`.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, NaiveDateTime};
use serde::Deserialize;

use super::{PageQuery, Staff};
use crate::db::articles::{NewArticle, insert_article, list_articles as load_articles};
use crate::routes::ApiError;
use crate::startup::AppState;

#[derive(Debug, Deserialize)]
pub struct ArticleBody {
    title: String,
    url: String,
    #[serde(default)]
    summary: String,
    published_at: Option<String>,
}

/// Checks an article typed by staff (API or CLI).
pub fn parse_article(
    title: &str,
    url: &str,
    summary: &str,
    published_at: Option<&str>,
) -> Result<NewArticle, String> {
    let title = title.trim();
    if title.is_empty() || title.chars().count() > 300 {
        return Err("title must have 1 to 300 characters".into());
    }
    let parsed = url::Url::parse(url.trim())
        .map_err(|_| "url must be an absolute http(s) URL".to_string())?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("url must be an absolute http(s) URL".into());
    }
    if summary.chars().count() > 5000 {
        return Err("summary must be at most 5000 characters".into());
    }
    let published_at = match published_at.map(str::trim).filter(|p| !p.is_empty()) {
        None => crate::db::now(),
        Some(text) => parse_time(text).ok_or_else(|| {
            "published_at must be a date like 2026-11-23 or 2026-11-23T10:00:00Z".to_string()
        })?,
    };
    Ok(NewArticle {
        title: title.to_string(),
        url: parsed.to_string(),
        summary: summary.trim().to_string(),
        published_at,
        feed_guid: None,
    })
}

/// RFC 3339 (any offset, stored as UTC) or a plain date.
pub fn parse_time(text: &str) -> Option<NaiveDateTime> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.naive_utc())
        .ok()
        .or_else(|| {
            chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })
}

pub async fn create_article(
    staff: Staff,
    body: web::Json<ArticleBody>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let article = parse_article(
        &body.title,
        &body.url,
        &body.summary,
        body.published_at.as_deref(),
    )
    .map_err(ApiError::Invalid)?;
    let stored = state
        .db
        .run(move |conn| insert_article(conn, &article))
        .await?;
    let Some(stored) = stored else {
        return Err(ApiError::Conflict(
            "an article with this url is already there".into(),
        ));
    };
    tracing::info!(staff = %staff.name, article = stored.id, "article added");
    Ok(HttpResponse::Created().json(stored))
}

pub async fn list_articles(
    _staff: Staff,
    query: web::Query<PageQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (page, per_page) = (query.page(), query.per_page());
    let articles = state
        .db
        .run(move |conn| Ok(load_articles(conn, page, per_page)?))
        .await?;
    Ok(HttpResponse::Ok()
        .json(serde_json::json!({ "articles": articles, "page": page, "per_page": per_page })))
}
