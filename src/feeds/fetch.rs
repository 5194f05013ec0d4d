//! Fetching a feed over http(s), with a size limit and a timeout.

use std::time::Duration;

use super::FeedError;

/// Largest feed we read.
const MAX_FEED_BYTES: usize = 10 * 1024 * 1024;

pub async fn fetch(url: &str) -> Result<Vec<u8>, FeedError> {
    crate::install_crypto_provider();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .user_agent(concat!(
            "newsletter/",
            env!("CARGO_PKG_VERSION"),
            " (feed import)"
        ))
        .build()
        .map_err(|e| FeedError::Fetch(e.to_string()))?;
    let mut response = client
        .get(url)
        .send()
        .await
        .map_err(|e| FeedError::Fetch(error_chain(&e)))?;
    if !response.status().is_success() {
        return Err(FeedError::Fetch(format!(
            "{url} answered {}",
            response.status()
        )));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| FeedError::Fetch(error_chain(&e)))?
    {
        if body.len() + chunk.len() > MAX_FEED_BYTES {
            return Err(FeedError::Fetch(format!(
                "the feed is larger than {MAX_FEED_BYTES} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
