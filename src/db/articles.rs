//! Articles that digests are made of, added by hand or imported from the site's feed.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;

use super::schema::articles;
use super::{DbConnection, now, write_tx};

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = articles)]
pub struct Article {
    pub id: i64,
    pub title: String,
    pub url: String,
    pub summary: String,
    pub published_at: NaiveDateTime,
    pub feed_guid: Option<String>,
    pub created_at: NaiveDateTime,
    pub image_url: Option<String>,
    pub image_alt: Option<String>,
}

/// An article checked by the caller, ready to store.
#[derive(Debug, Clone)]
pub struct NewArticle {
    pub title: String,
    pub url: String,
    pub summary: String,
    pub published_at: NaiveDateTime,
    pub feed_guid: Option<String>,
    /// An absolute http(s) image, and what it shows (empty: the title stands for it).
    pub image: Option<(String, String)>,
}

/// Stores one article; `None` when one with the same URL (or feed guid) is already there.
pub fn insert_article(
    conn: &mut DbConnection,
    article: &NewArticle,
) -> anyhow::Result<Option<Article>> {
    write_tx(conn, |conn| {
        if is_known(conn, article)? {
            return Ok(None);
        }
        insert(conn, article)?;
        Ok(articles::table
            .filter(articles::url.eq(&article.url))
            .select(Article::as_select())
            .first(conn)
            .optional()?)
    })
}

/// Stores the new ones of a feed's items in one transaction: the ids of those imported, and
/// how many were known already.
pub fn import_articles(
    conn: &mut DbConnection,
    items: &[NewArticle],
) -> anyhow::Result<(Vec<i64>, usize)> {
    write_tx(conn, |conn| {
        let mut imported = Vec::new();
        for item in items {
            if is_known(conn, item)? {
                continue;
            }
            imported.push(insert(conn, item)?);
        }
        let skipped = items.len() - imported.len();
        Ok((imported, skipped))
    })
}

/// Stores one article; its id.
fn insert(conn: &mut DbConnection, article: &NewArticle) -> QueryResult<i64> {
    crate::on_backend!(conn, |c| diesel::insert_into(articles::table)
        .values((
            articles::title.eq(&article.title),
            articles::url.eq(&article.url),
            articles::summary.eq(&article.summary),
            articles::published_at.eq(article.published_at),
            articles::feed_guid.eq(&article.feed_guid),
            articles::created_at.eq(now()),
            articles::image_url.eq(article.image.as_ref().map(|(url, _)| url)),
            articles::image_alt.eq(article.image.as_ref().map(|(_, alt)| alt)),
        ))
        .returning(articles::id)
        .get_result(c))
}

fn is_known(conn: &mut DbConnection, article: &NewArticle) -> QueryResult<bool> {
    let by_url = articles::table.filter(articles::url.eq(&article.url));
    let count: i64 = match &article.feed_guid {
        Some(guid) => by_url
            .or_filter(articles::feed_guid.eq(guid))
            .count()
            .get_result(conn)?,
        None => by_url.count().get_result(conn)?,
    };
    Ok(count > 0)
}

/// Newest first, `per_page` at a time from page 1.
pub fn list_articles(
    conn: &mut DbConnection,
    page: i64,
    per_page: i64,
) -> QueryResult<Vec<Article>> {
    articles::table
        .order((articles::published_at.desc(), articles::id.desc()))
        .limit(per_page)
        .offset((page - 1).max(0).saturating_mul(per_page))
        .select(Article::as_select())
        .load(conn)
}

pub fn find_article(conn: &mut DbConnection, id: i64) -> QueryResult<Option<Article>> {
    articles::table
        .find(id)
        .select(Article::as_select())
        .first(conn)
        .optional()
}

/// What editing or deleting an article did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArticleChange {
    Done,
    NotFound,
    /// It is in a digest that went out: readers got it as it is.
    InSentDigest,
    /// Another article has this URL.
    DuplicateUrl,
}

/// Whether the article is in a digest that was sent (or is sending).
pub fn in_sent_digest(conn: &mut DbConnection, id: i64) -> QueryResult<bool> {
    use super::schema::{digest_articles, digests};
    let n: i64 = digest_articles::table
        .inner_join(digests::table)
        .filter(digest_articles::article_id.eq(id))
        .filter(digests::status.ne(crate::domain::DigestStatus::Draft.as_str()))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

/// Changes an article that is in no sent digest.
pub fn update_article(
    conn: &mut DbConnection,
    id: i64,
    article: &NewArticle,
) -> anyhow::Result<ArticleChange> {
    write_tx(conn, |conn| {
        if find_article(conn, id)?.is_none() {
            return Ok(ArticleChange::NotFound);
        }
        if in_sent_digest(conn, id)? {
            return Ok(ArticleChange::InSentDigest);
        }
        let other: i64 = articles::table
            .filter(articles::url.eq(&article.url))
            .filter(articles::id.ne(id))
            .count()
            .get_result(conn)?;
        if other > 0 {
            return Ok(ArticleChange::DuplicateUrl);
        }
        diesel::update(articles::table.find(id))
            .set((
                articles::title.eq(&article.title),
                articles::url.eq(&article.url),
                articles::summary.eq(&article.summary),
                articles::published_at.eq(article.published_at),
            ))
            .execute(conn)?;
        Ok(ArticleChange::Done)
    })
}

/// Deletes an article that is in no sent digest (drafts lose it).
pub fn delete_article(conn: &mut DbConnection, id: i64) -> anyhow::Result<ArticleChange> {
    use super::schema::digest_articles;
    write_tx(conn, |conn| {
        if find_article(conn, id)?.is_none() {
            return Ok(ArticleChange::NotFound);
        }
        if in_sent_digest(conn, id)? {
            return Ok(ArticleChange::InSentDigest);
        }
        diesel::delete(digest_articles::table.filter(digest_articles::article_id.eq(id)))
            .execute(conn)?;
        diesel::delete(articles::table.find(id)).execute(conn)?;
        Ok(ArticleChange::Done)
    })
}

pub fn count_articles(conn: &mut DbConnection) -> QueryResult<i64> {
    articles::table.count().get_result(conn)
}
