//! `POST /admin/api/articles` and `GET /admin/api/articles`.

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::{PageQuery, Staff};
use crate::db::articles::{insert_article, list_articles as load_articles};
use crate::digests::parse_article;
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
    let (page, per_page) = (query.page()?, query.per_page());
    let articles = state
        .db
        .run(move |conn| Ok(load_articles(conn, page, per_page)?))
        .await?;
    Ok(HttpResponse::Ok()
        .json(serde_json::json!({ "articles": articles, "page": page, "per_page": per_page })))
}
