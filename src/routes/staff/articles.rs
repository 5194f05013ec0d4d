//! Articles: list, add, edit, delete (not once a digest with it went out), and import from the
//! site's feed.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::{AdminError, Change, Signed, render_status, see_other};
use crate::db::articles::{
    Article, ArticleChange, count_articles, delete_article, find_article, in_sent_digest,
    insert_article, list_articles, update_article,
};
use crate::db::digests::articles_in_sent_digests;
use crate::db::staff::{last_detail_of, log_activity};
use crate::digests::parse_article;
use crate::feeds::{FeedError, FetchPolicy, import_feed};
use crate::startup::AppState;

const PER_PAGE: i64 = 50;
const IMPORTED_FEED: &str = "imported feed";

#[derive(Deserialize)]
pub struct ListQuery {
    page: Option<i64>,
    imported: Option<u32>,
    skipped: Option<u32>,
}

#[derive(Serialize, Default)]
struct ArticleForm {
    title: String,
    url: String,
    summary: String,
    published_at: String,
}

#[derive(Serialize)]
struct ArticleRow {
    #[serde(flatten)]
    article: Article,
    published: String,
    in_sent_digest: bool,
}

#[derive(Serialize)]
struct ListPage {
    articles: Vec<ArticleRow>,
    total: i64,
    page: i64,
    next_page: Option<i64>,
    previous_page: Option<i64>,
    form: ArticleForm,
    error: Option<String>,
    feed_url: String,
    feed_error: Option<String>,
    imported: Option<u32>,
    skipped: Option<u32>,
}

/// "Title must have…" from the shared checks' "title must have…".
pub(super) fn sentence(message: &str) -> String {
    let mut chars = message.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect::<String>() + ".",
        None => String::new(),
    }
}

async fn list_page(
    signed: &Signed,
    request: &HttpRequest,
    state: &AppState,
    page: i64,
    mut content: ListPage,
    status: StatusCode,
) -> Result<HttpResponse, AdminError> {
    let (articles, total, sent, last_feed) = state
        .db
        .run(move |conn| {
            Ok((
                list_articles(conn, page, PER_PAGE)?,
                count_articles(conn)?,
                articles_in_sent_digests(conn)?,
                last_detail_of(conn, IMPORTED_FEED)?,
            ))
        })
        .await?;
    content.articles = articles
        .into_iter()
        .map(|a| ArticleRow {
            published: a.published_at.format("%Y-%m-%d").to_string(),
            in_sent_digest: sent.contains(&a.id),
            article: a,
        })
        .collect();
    content.total = total;
    content.page = page;
    content.next_page = (page * PER_PAGE < total).then_some(page + 1);
    content.previous_page = (page > 1).then_some(page - 1);
    if content.feed_url.is_empty() {
        content.feed_url = last_feed.unwrap_or_default();
    }
    render_status(
        state,
        Some(signed),
        request,
        "articles.html",
        "articles",
        "Articles",
        status,
        content,
    )
}

fn empty_list() -> ListPage {
    ListPage {
        articles: Vec::new(),
        total: 0,
        page: 1,
        next_page: None,
        previous_page: None,
        form: ArticleForm::default(),
        error: None,
        feed_url: String::new(),
        feed_error: None,
        imported: None,
        skipped: None,
    }
}

pub async fn list(
    signed: Signed,
    request: HttpRequest,
    query: web::Query<ListQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    let page = query.page.unwrap_or(1).clamp(1, 100_000);
    let mut content = empty_list();
    content.imported = query.imported;
    content.skipped = query.skipped;
    list_page(&signed, &request, &state, page, content, StatusCode::OK).await
}

fn form_of(form: &super::FormData) -> ArticleForm {
    ArticleForm {
        title: form.get("title").to_string(),
        url: form.get("url").to_string(),
        summary: form.get("summary").to_string(),
        published_at: form.get("published_at").to_string(),
    }
}

pub async fn create(
    change: Change,
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    let Change { staff, form } = change;
    let typed = form_of(&form);
    let parsed = parse_article(
        &typed.title,
        &typed.url,
        &typed.summary,
        Some(&typed.published_at),
    );
    let article = match parsed {
        Ok(article) => article,
        Err(message) => {
            let mut content = empty_list();
            content.error = Some(sentence(&message));
            content.form = typed;
            return list_page(
                &staff,
                &request,
                &state,
                1,
                content,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
    };
    let actor = staff.actor();
    let added = state
        .db
        .run(move |conn| {
            let added = insert_article(conn, &article)?;
            if let Some(a) = &added {
                log_activity(
                    conn,
                    &actor,
                    "added article",
                    &format!("{} ({})", a.title, a.id),
                )?;
            }
            Ok(added)
        })
        .await?;
    if added.is_none() {
        let mut content = empty_list();
        content.error = Some("An article with this URL is already in the list.".into());
        content.form = typed;
        return list_page(&staff, &request, &state, 1, content, StatusCode::CONFLICT).await;
    }
    Ok(see_other("/admin/articles?done=article-added"))
}

pub async fn import(
    change: Change,
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    let Change { staff, form } = change;
    let url = form.get("feed_url").to_string();
    let failed = |message: String| {
        let mut content = empty_list();
        content.feed_url = url.clone();
        content.feed_error = Some(message);
        content
    };
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        let content = failed(
            "Enter the address of the site's RSS or Atom feed, starting with https://.".into(),
        );
        return list_page(
            &staff,
            &request,
            &state,
            1,
            content,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    let policy = FetchPolicy::new(state.settings.feeds.allow_private_networks);
    match import_feed(&state.db, &url, &policy).await {
        Ok((imported, skipped)) => {
            let (actor, detail) = (staff.actor(), url.clone());
            state
                .db
                .run(move |conn| Ok(log_activity(conn, &actor, IMPORTED_FEED, &detail)?))
                .await?;
            Ok(see_other(&format!(
                "/admin/articles?imported={imported}&skipped={skipped}"
            )))
        }
        Err(FeedError::Unexpected(e)) => Err(AdminError::from(e)),
        Err(e) => {
            let content = failed(format!("The feed could not be imported: {e}."));
            list_page(
                &staff,
                &request,
                &state,
                1,
                content,
                StatusCode::BAD_GATEWAY,
            )
            .await
        }
    }
}

#[derive(Serialize)]
struct EditPage {
    id: i64,
    form: ArticleForm,
    in_sent_digest: bool,
    error: Option<String>,
}

async fn load(state: &AppState, id: i64) -> Result<(Article, bool), AdminError> {
    let found = state
        .db
        .run(move |conn| {
            let article = find_article(conn, id)?;
            let sent = in_sent_digest(conn, id)?;
            Ok(article.map(|a| (a, sent)))
        })
        .await?;
    found.ok_or_else(|| {
        AdminError::NotFound(format!(
            "There is no article {id}; it may have been deleted."
        ))
    })
}

pub async fn edit_page(
    signed: Signed,
    request: HttpRequest,
    id: web::Path<i64>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    let (article, in_sent_digest) = load(&state, id.into_inner()).await?;
    let page = EditPage {
        id: article.id,
        form: ArticleForm {
            published_at: article.published_at.format("%Y-%m-%d").to_string(),
            title: article.title,
            url: article.url,
            summary: article.summary,
        },
        in_sent_digest,
        error: None,
    };
    render_status(
        &state,
        Some(&signed),
        &request,
        "article.html",
        "articles",
        "Edit article",
        StatusCode::OK,
        page,
    )
}

pub async fn update(
    change: Change,
    request: HttpRequest,
    id: web::Path<i64>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    let Change { staff, form } = change;
    let id = id.into_inner();
    let typed = form_of(&form);
    let refuse = |typed: ArticleForm, message: String, in_sent_digest: bool| EditPage {
        id,
        form: typed,
        in_sent_digest,
        error: Some(message),
    };
    let article = match parse_article(
        &typed.title,
        &typed.url,
        &typed.summary,
        Some(&typed.published_at),
    ) {
        Ok(article) => article,
        Err(message) => {
            let page = refuse(typed, sentence(&message), false);
            return render_status(
                &state,
                Some(&staff),
                &request,
                "article.html",
                "articles",
                "Edit article",
                StatusCode::UNPROCESSABLE_ENTITY,
                page,
            );
        }
    };
    let actor = staff.actor();
    let title = article.title.clone();
    let outcome = state
        .db
        .run(move |conn| {
            let outcome = update_article(conn, id, &article)?;
            if outcome == ArticleChange::Done {
                log_activity(conn, &actor, "edited article", &format!("{title} ({id})"))?;
            }
            Ok(outcome)
        })
        .await?;
    let message = match outcome {
        ArticleChange::Done => return Ok(see_other("/admin/articles?done=article-saved")),
        ArticleChange::NotFound => {
            return Err(AdminError::NotFound(format!(
                "There is no article {id}; it may have been deleted."
            )));
        }
        ArticleChange::InSentDigest => {
            "This article is in a digest that was sent, so it stays as readers got it."
        }
        ArticleChange::DuplicateUrl => "Another article has this URL.",
    };
    let page = refuse(
        typed,
        message.into(),
        outcome == ArticleChange::InSentDigest,
    );
    render_status(
        &state,
        Some(&staff),
        &request,
        "article.html",
        "articles",
        "Edit article",
        StatusCode::CONFLICT,
        page,
    )
}

pub async fn delete(
    change: Change,
    id: web::Path<i64>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    let id = id.into_inner();
    let actor = change.staff.actor();
    let outcome = state
        .db
        .run(move |conn| {
            let title = find_article(conn, id)?.map(|a| a.title).unwrap_or_default();
            let outcome = delete_article(conn, id)?;
            if outcome == ArticleChange::Done {
                log_activity(conn, &actor, "deleted article", &format!("{title} ({id})"))?;
            }
            Ok(outcome)
        })
        .await?;
    match outcome {
        ArticleChange::Done => Ok(see_other("/admin/articles?done=article-deleted")),
        ArticleChange::NotFound => Err(AdminError::NotFound(format!(
            "There is no article {id}; it may have been deleted already."
        ))),
        _ => Err(AdminError::Forbidden(
            "This article is in a digest that was sent, so it cannot be deleted.".into(),
        )),
    }
}
