//! Concurrent signups are written in shared transactions (group commit). These tests flood the
//! service and check that batching changes nothing a visitor or the ledger could see.

use std::collections::HashMap;

use diesel::prelude::*;
use newsletter::db::group_commit::GroupCommit;
use newsletter::db::schema::{deliveries, subscriber_events, subscribers, suppressions};
use newsletter::db::{Db, DbConnection};

use crate::helpers::{fresh_database_url, spawn_app_without_worker};

/// Rows per subscriber address, from a query returning (email, count).
fn per_address(rows: Vec<(String, i64)>) -> HashMap<String, i64> {
    rows.into_iter().collect()
}

#[tokio::test]
async fn a_burst_of_concurrent_signups_stores_each_once_and_keeps_the_link_limit() {
    // No worker: the queue is read, not sent. No per-client limit: the flood comes from one
    // address.
    let app = spawn_app_without_worker(|s| s.signup.rate_limit_per_minute = 1_000_000).await;
    let confirmed = app.seed_confirmed("known", 1).remove(0);
    let mut addresses: Vec<String> = (0..150).map(|i| format!("burst{i}@example.org")).collect();
    // Twenty new addresses four times each, spread over the burst, so copies land in the same
    // batch and in batches committed side by side (PostgreSQL has two committers).
    for copy in 0..4 {
        for r in 0..20 {
            addresses.insert(r * 7 + copy * 2, format!("repeat{r}@example.org"));
        }
    }
    for i in 0..5 {
        addresses.insert(i * 30 + 7, confirmed.clone());
    }

    let app = &app;
    let answers = futures_util::future::join_all(addresses.iter().map(|email| async move {
        let response = app.signup(email).await;
        (response.status().as_u16(), response.text().await.unwrap())
    }))
    .await;

    let first = answers[0].clone();
    assert_eq!(first.0, 202);
    assert!(
        answers.iter().all(|answer| *answer == first),
        "every signup gets the same answer: {:?}",
        answers.iter().find(|a| **a != first)
    );
    assert_eq!(app.count_subscribers(), 150 + 20 + 1);
    let confirmations = per_address(app.query(|c| {
        deliveries::table
            .inner_join(subscribers::table)
            .filter(deliveries::kind.eq("confirmation"))
            .group_by(subscribers::email)
            .select((subscribers::email, diesel::dsl::count_star()))
            .load(c)
    }));
    let events = per_address(app.query(|c| {
        subscriber_events::table
            .inner_join(subscribers::table)
            .filter(subscriber_events::kind.eq("subscribed"))
            .group_by(subscribers::email)
            .select((subscribers::email, diesel::dsl::count_star()))
            .load(c)
    }));
    for i in 0..150 {
        let email = format!("burst{i}@example.org");
        assert_eq!(confirmations.get(&email), Some(&1), "{email}");
        assert_eq!(events.get(&email), Some(&1), "{email}");
    }
    // Four signups of one address in a burst: one person, three links (the hourly limit), a
    // ledger entry for each link sent.
    for r in 0..20 {
        let email = format!("repeat{r}@example.org");
        assert_eq!(confirmations.get(&email), Some(&3), "{email}");
        assert_eq!(events.get(&email), Some(&3), "{email}");
    }
    assert_eq!(confirmations.get(&confirmed), None);
    assert_eq!(
        app.subscriber_status(&confirmed).as_deref(),
        Some("confirmed")
    );
}

/// Inserts each item into `suppressions`; a second copy of a hash breaks the primary key.
fn suppress(conn: &mut DbConnection, hashes: &[String]) -> anyhow::Result<Vec<()>> {
    let now = chrono::Utc::now().naive_utc();
    for hash in hashes {
        diesel::insert_into(suppressions::table)
            .values((
                suppressions::email_hash.eq(hash),
                suppressions::created_at.eq(now),
            ))
            .execute(conn)?;
    }
    Ok(vec![(); hashes.len()])
}

#[tokio::test]
async fn a_write_that_fails_inside_a_batch_fails_alone_and_the_others_are_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(&fresh_database_url(dir.path()).into(), 4).unwrap();
    db.migrate().unwrap();
    let writes = GroupCommit::start(db.clone(), suppress);
    let mut items: Vec<String> = (0..18).map(|i| format!("hash-{i}")).collect();
    items.insert(5, "twice".into());
    items.insert(12, "twice".into());

    // Submitted together, so they share a batch; the second "twice" breaks the whole
    // transaction, which is then written again item by item.
    let results =
        futures_util::future::join_all(items.iter().map(|i| writes.submit(i.clone()))).await;

    let failed: Vec<_> = items
        .iter()
        .zip(&results)
        .filter_map(|(item, result)| {
            result
                .as_ref()
                .err()
                .map(|e| (item.clone(), format!("{e:#}")))
        })
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].0, "twice");
    assert!(
        failed[0].1.to_lowercase().contains("unique") || failed[0].1.contains("duplicate"),
        "the error names its cause: {}",
        failed[0].1
    );
    let mut conn = db.get().unwrap();
    let mut stored: Vec<String> = suppressions::table
        .select(suppressions::email_hash)
        .load(&mut *conn)
        .unwrap();
    stored.sort();
    let mut expected: Vec<String> = (0..18).map(|i| format!("hash-{i}")).collect();
    expected.push("twice".into());
    expected.sort();
    assert_eq!(stored, expected, "every good write stored, none twice");
}
