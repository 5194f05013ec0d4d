//! Requests the service cannot answer as asked get the site's page in a browser and JSON for an
//! API client, by `Accept`: unknown paths, wrong methods, bodies too large or of another type,
//! failures on our side. `/` leads to the signup page.

use diesel::RunQueryDsl;

use crate::helpers::{TestApp, spawn_app, spawn_app_with};

const BROWSER: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

async fn as_browser(request: reqwest::RequestBuilder) -> (u16, String, String) {
    let response = request.header("Accept", BROWSER).send().await.unwrap();
    let status = response.status().as_u16();
    let kind = header(&response, "content-type");
    (status, kind, response.text().await.unwrap())
}

async fn as_client(
    request: reqwest::RequestBuilder,
) -> (u16, reqwest::header::HeaderMap, serde_json::Value) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    assert!(
        header(&response, "content-type").starts_with("application/json"),
        "{headers:?}"
    );
    (status, headers, response.json().await.unwrap())
}

fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

/// The site's page: its layout, name and a way on.
fn assert_site_page(html: &str, title: &str) {
    assert!(html.contains(&format!("<h1>{title}</h1>")), "{html}");
    assert!(html.contains("The Spine Clinic"), "the site's name: {html}");
    assert!(html.contains("Go to the signup page"), "a way on: {html}");
}

async fn clinic() -> TestApp {
    spawn_app_with(|s| s.site.name = "The Spine Clinic".into()).await
}

#[tokio::test]
async fn an_unknown_path_gets_the_sites_404_page_in_a_browser_and_json_elsewhere() {
    let app = clinic().await;
    let (status, kind, html) = as_browser(app.client.get(app.url("/no/such/page"))).await;
    assert_eq!(status, 404);
    assert!(kind.starts_with("text/html"), "{kind}");
    assert_site_page(&html, "Page not found");

    let (status, _, body) = as_client(app.client.get(app.url("/no/such/page"))).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"], "no such path");
    let (status, _, body) = as_client(
        app.client
            .get(app.url("/admin/api/no-such-thing"))
            .header("Accept", BROWSER),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("no such path")),
        "the staff API answers JSON to anyone"
    );
}

#[tokio::test]
async fn a_method_a_path_does_not_take_gets_405_with_allow() {
    let app = clinic().await;
    let (status, kind, html) = as_browser(app.client.post(app.url("/subscribe"))).await;
    assert_eq!(status, 405);
    assert!(kind.starts_with("text/html"));
    assert_site_page(&html, "This page cannot do that");

    let (status, headers, body) = as_client(app.client.put(app.url("/subscriptions"))).await;
    assert_eq!(status, 405);
    assert_eq!(headers["allow"], "POST");
    assert_eq!(body["error"], "this path does not take that method");
    let (_, headers, _) = as_client(app.client.delete(app.url("/unsubscribe?token=x"))).await;
    assert_eq!(headers["allow"], "GET, HEAD, POST");
}

#[tokio::test]
async fn a_body_too_large_or_of_another_type_gets_a_page_in_a_browser_and_json_elsewhere() {
    let app = clinic().await;
    let huge = format!("email={}", "a".repeat(40_000));
    let form = || {
        app.client
            .post(app.url("/subscriptions"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(huge.clone())
    };
    let (status, _, html) = as_browser(form()).await;
    assert_eq!(status, 413);
    assert_site_page(&html, "That was too much");
    let (status, _, body) = as_client(form()).await;
    assert_eq!(status, 413);
    assert_eq!(body["error"], "request body is larger than 16384 bytes");

    let text = || {
        app.client
            .post(app.url("/subscriptions"))
            .header("Content-Type", "text/plain")
            .body("email=someone@example.org")
    };
    let (status, _, html) = as_browser(text()).await;
    assert_eq!(status, 415);
    assert_site_page(&html, "We could not read that");
    let (status, _, body) = as_client(text()).await;
    assert_eq!(status, 415);
    assert_eq!(
        body["error"],
        "send application/json or application/x-www-form-urlencoded"
    );
    assert_eq!(app.count_subscribers(), 0, "nothing stored");
}

#[tokio::test]
async fn a_failure_on_our_side_gets_the_sites_page_or_json_without_the_cause() {
    let app = clinic().await;
    // A database that lost a table: every confirmation link fails on our side.
    app.query(|c| diesel::sql_query("DROP TABLE confirmation_tokens").execute(c));
    let link = format!("/subscriptions/confirm?token={}", "ab".repeat(32));
    let (status, kind, html) = as_browser(app.client.get(app.url(&link))).await;
    assert_eq!(status, 500);
    assert!(kind.starts_with("text/html"));
    assert_site_page(&html, "Something went wrong");
    assert!(
        !html.contains("confirmation_tokens"),
        "no cause shown: {html}"
    );

    let (status, _, body) = as_client(app.client.get(app.url(&link))).await;
    assert_eq!(status, 500);
    assert_eq!(body["error"], "something went wrong on our side");
}

#[tokio::test]
async fn the_front_door_leads_to_the_signup_page_and_pages_answer_head() {
    let app = spawn_app().await;
    let response = app.get("/").await;
    assert_eq!(response.status().as_u16(), 302);
    assert_eq!(
        header(&response, "location"),
        format!("{}/subscribe", app.address)
    );
    for path in ["/subscribe", "/subscribe/thanks", "/health"] {
        let response = app.client.head(app.url(path)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200, "{path}");
        assert!(
            response.text().await.unwrap().is_empty(),
            "HEAD has no body"
        );
    }
}
