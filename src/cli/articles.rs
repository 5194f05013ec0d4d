//! `newsletter articles add|import-feed|list`: the articles digests are made of.

use std::time::Duration;

use anyhow::Context;
use indicatif::ProgressBar;

use super::{ArticlesCommand, open_db};
use crate::configuration::Settings;
use crate::db::articles::{insert_article, list_articles};
use crate::digests::parse_article;
use crate::feeds::{FetchPolicy, import_feed};

pub async fn articles(settings: &Settings, command: ArticlesCommand) -> anyhow::Result<()> {
    let db = open_db(settings)?;
    match command {
        ArticlesCommand::Add {
            title,
            url,
            summary,
            published_at,
        } => {
            let article = parse_article(&title, &url, &summary, published_at.as_deref())
                .map_err(anyhow::Error::msg)?;
            let stored = db.run(move |conn| insert_article(conn, &article)).await?;
            let stored = stored.context("an article with this url is already there")?;
            println!("article {} added: {}", stored.id, stored.title);
        }
        ArticlesCommand::ImportFeed { source } => {
            let spinner = ProgressBar::new_spinner().with_message(format!("importing {source}"));
            spinner.enable_steady_tick(Duration::from_millis(120));
            let policy = FetchPolicy::new(settings.feeds.allow_private_networks);
            let outcome = import_feed(&db, &source, &policy).await;
            spinner.finish_and_clear();
            let (imported, skipped) = outcome?;
            println!("imported {imported}, skipped {skipped} already known");
        }
        ArticlesCommand::List { page } => {
            let list = db
                .run(move |conn| Ok(list_articles(conn, page.max(1), 50)?))
                .await?;
            for a in list {
                println!(
                    "{:>6}  {}  {}\n        {}",
                    a.id,
                    a.published_at.format("%Y-%m-%d"),
                    a.title,
                    a.url
                );
            }
        }
    }
    Ok(())
}
