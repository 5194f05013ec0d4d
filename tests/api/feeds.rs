//! Feed import as staff use it: real feeds from the wild, and the requests it must refuse (no
//! fetching from our own network, no endless bodies or servers).

use std::time::{Duration, Instant};

use crate::helpers::{TestApp, serve_bytes, serve_feed, serve_http, spawn_app, spawn_app_with};

async fn import(app: &TestApp, token: &str, url: &str) -> (u16, serde_json::Value) {
    let response = app
        .admin_post(token, "/feeds/import", serde_json::json!({ "url": url }))
        .await;
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn feeds_in_our_own_network_are_refused_unless_allowed() {
    let app = spawn_app_with(|s| s.feeds.allow_private_networks = false).await;
    let token = app.staff_token();
    let feed = serve_feed(crate::helpers::FEED);
    let port = url::Url::parse(&feed).unwrap().port().unwrap();
    for url in [
        feed.clone(),
        format!("http://localhost:{port}/feed.xml"),
        format!("http://[::1]:{port}/feed.xml"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://10.0.0.1/feed.xml".to_string(),
    ] {
        let (status, body) = import(&app, &token, &url).await;
        assert_eq!(status, 422, "{url}: {body}");
        let error = body["error"].as_str().unwrap();
        assert!(
            error.contains("private network") && error.contains("feeds.allow_private_networks"),
            "{url}: {error}"
        );
    }
    let listed: serde_json::Value = app.admin_json(&token, "/articles").await;
    assert!(listed["articles"].as_array().unwrap().is_empty());

    // The command line says the same and stops with exit code 1.
    let cli = app
        .command(&["articles", "import-feed", &feed])
        .output()
        .unwrap();
    assert_eq!(cli.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&cli.stderr).contains("private network"));
}

#[tokio::test]
async fn a_feed_larger_than_5_mb_is_cut_off() {
    let app = spawn_app().await;
    let token = app.staff_token();
    let huge = format!(
        "<?xml version=\"1.0\"?><rss><channel>{}</channel></rss>",
        " ".repeat(6 << 20)
    );
    let (status, body) = import(
        &app,
        &token,
        &serve_bytes(huge.into_bytes(), "application/rss+xml"),
    )
    .await;
    assert_eq!(status, 502, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("larger than 5 MB"),
        "{body}"
    );
}

#[tokio::test]
async fn a_server_that_stops_sending_is_cut_off() {
    let app = spawn_app().await;
    let token = app.staff_token();
    let stalling = serve_http(|_| {
        let body = futures_util::stream::unfold(0, |sent| async move {
            if sent == 0 {
                let start =
                    actix_web::web::Bytes::from_static(b"<?xml version=\"1.0\"?><rss><channel>");
                return Some((Ok::<_, std::io::Error>(start), 1));
            }
            tokio::time::sleep(Duration::from_secs(120)).await;
            None
        });
        actix_web::HttpResponse::Ok()
            .content_type("application/rss+xml")
            .streaming(body)
    });
    let started = Instant::now();
    let (status, body) = import(&app, &token, &stalling).await;
    assert_eq!(status, 502, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("did not answer in time"),
        "{body}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(35),
        "cut off after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn eight_real_feeds_import_with_absolute_links_and_a_broken_one_is_a_clear_error() {
    let app = spawn_app().await;
    let token = app.staff_token();
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/feeds/");
    let cases = [
        ("wordpress-rss2-norm2782.xml", 10),
        ("wordpress-atom10-norm2782.xml", 0), // the same blog's posts, known by link already
        ("atom-tpm-script-relative-links.atom", 20),
        ("rss1-golem-iso-8859-1.rdf", 1),
        ("rss2-relative-urls-arcgames.xml", 2),
        ("atom-heise-utf8-german.atom", 15),
        ("rss2-wapo-wellness-health.xml", 29),
    ];
    for (name, imported) in cases {
        let bytes = std::fs::read(format!("{fixtures}{name}")).unwrap();
        let (status, body) = import(&app, &token, &serve_bytes(bytes, "application/xml")).await;
        assert_eq!(
            (status, body["imported"].as_i64()),
            (200, Some(imported)),
            "{name}: {body}"
        );
    }
    let bytes = std::fs::read(format!("{fixtures}malformed-reuters-truncated.xml")).unwrap();
    let (status, body) = import(&app, &token, &serve_bytes(bytes, "application/rss+xml")).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("could not be read as RSS or Atom")
    );

    let listed: serde_json::Value = app.admin_json(&token, "/articles?per_page=500").await;
    let articles = listed["articles"].as_array().unwrap();
    assert_eq!(articles.len(), 77);
    for article in articles {
        let link = article["url"].as_str().unwrap();
        assert!(
            link.starts_with("http://") || link.starts_with("https://"),
            "{link}"
        );
        assert!(
            !link.contains("127.0.0.1"),
            "resolved against the feed's own address: {link}"
        );
    }
    assert!(
        articles
            .iter()
            .any(|a| a["title"].as_str().unwrap().contains("Glasfaserförderung"))
    );
}
