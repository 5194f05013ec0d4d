//! The site's RSS or Atom feed becomes articles: fetched (`fetch`), read (`parse`), and stored
//! without the items already known by link or guid.

mod fetch;
mod parse;

pub use parse::{parse_feed, plain_text};

use crate::db::Db;
use crate::db::articles::import_articles;

#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error("the feed could not be fetched: {0}")]
    Fetch(String),
    #[error("the feed could not be read as RSS or Atom: {0}")]
    Parse(String),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Imports a feed's items as articles, skipping those already known by link or guid.
/// `source` is an http(s) URL or a file path. Returns (imported, skipped).
pub async fn import_feed(db: &Db, source: &str) -> Result<(usize, usize), FeedError> {
    let bytes = if source.starts_with("http://") || source.starts_with("https://") {
        fetch::fetch(source).await?
    } else {
        tokio::fs::read(source)
            .await
            .map_err(|e| FeedError::Fetch(format!("reading {source}: {e}")))?
    };
    let items = parse_feed(&bytes)?;
    let imported = db.run(move |conn| import_articles(conn, &items)).await?;
    tracing::info!(
        source,
        imported = imported.0,
        skipped = imported.1,
        "feed imported"
    );
    Ok(imported)
}
