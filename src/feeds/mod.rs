//! The site's RSS or Atom feed becomes articles: fetched without reaching into our own network
//! (`fetch`), read with its relative links made absolute (`parse`), and stored without the
//! items already known by link or guid.

mod fetch;
mod parse;

pub use fetch::{FetchPolicy, Fetched, MAX_FEED_BYTES, Validators, fetch_if_changed, is_public};
pub use parse::{parse_feed, plain_text};

use crate::db::Db;
use crate::db::articles::import_articles;

#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// The feed's server could not be reached, answered an error, or sent too much.
    #[error("the feed could not be fetched: {0}")]
    Fetch(String),
    /// We would not fetch it: a private address, a redirect elsewhere than http(s).
    #[error("the feed was not fetched: {0}")]
    Refused(String),
    #[error("the feed could not be read as RSS or Atom: {0}")]
    Parse(String),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Imports a feed's items as articles, skipping those already known by link or guid.
/// `source` is an http(s) URL or (from the command line) a file path. Returns (imported, skipped).
pub async fn import_feed(
    db: &Db,
    source: &str,
    policy: &FetchPolicy,
) -> Result<(usize, usize), FeedError> {
    let remote = source.starts_with("http://") || source.starts_with("https://");
    let bytes = if remote {
        fetch::fetch(source, policy).await?
    } else {
        tokio::fs::read(source)
            .await
            .map_err(|e| FeedError::Fetch(format!("reading {source}: {e}")))?
    };
    let items = parse_feed(&bytes, remote.then_some(source))?;
    let (imported, skipped) = db.run(move |conn| import_articles(conn, &items)).await?;
    tracing::info!(source, imported = imported.len(), skipped, "feed imported");
    Ok((imported.len(), skipped))
}

/// An error and its causes on one line, for the log.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
