//! Cross-origin signups (`signup.allowed_origins`): the JSON API answers the CORS preflight of
//! the origins named, and only theirs; forms posting from anywhere keep working. The same in a
//! real browser is in `browser.rs`.

use crate::helpers::{spawn_app, spawn_app_with};

const CLINIC: &str = "https://clinic.example";

async fn preflight(app: &crate::helpers::TestApp, origin: &str) -> reqwest::Response {
    app.client
        .request(reqwest::Method::OPTIONS, app.url("/subscriptions"))
        .header("Origin", origin)
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "content-type")
        .send()
        .await
        .unwrap()
}

fn allowed_origin(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get("access-control-allow-origin")
        .map(|v| v.to_str().unwrap().to_string())
}

#[tokio::test]
async fn the_origins_named_may_sign_up_with_fetch_and_no_other() {
    let app = spawn_app_with(|s| s.signup.allowed_origins = vec![CLINIC.into()]).await;
    let answer = preflight(&app, CLINIC).await;
    assert_eq!(answer.status().as_u16(), 200);
    assert_eq!(allowed_origin(&answer).as_deref(), Some(CLINIC));
    let methods = answer.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap();
    assert!(methods.contains("POST"), "{methods}");

    let signup = app
        .client
        .post(app.url("/subscriptions"))
        .header("Origin", CLINIC)
        .json(&serde_json::json!({ "email": "from.the.site@example.org" }))
        .send()
        .await
        .unwrap();
    assert_eq!(signup.status().as_u16(), 202);
    assert_eq!(allowed_origin(&signup).as_deref(), Some(CLINIC));

    let elsewhere = preflight(&app, "https://evil.example").await;
    assert_eq!(allowed_origin(&elsewhere), None, "no CORS for other sites");
    // A plain form posted from another site (no script reads the answer) still signs up.
    let form = app
        .client
        .post(app.url("/subscriptions"))
        .header("Origin", "https://partner.example")
        .form(&[("email", "from.a.form@example.org")])
        .send()
        .await
        .unwrap();
    assert_eq!(form.status().as_u16(), 303);
    assert_eq!(allowed_origin(&form), None);
    assert_eq!(app.count_subscribers(), 2);
}

#[tokio::test]
async fn without_origins_named_there_is_no_cors_at_all() {
    let app = spawn_app().await;
    let answer = preflight(&app, CLINIC).await;
    assert_eq!(allowed_origin(&answer), None);
    assert_eq!(answer.status().as_u16(), 405);
    assert_eq!(answer.headers()["allow"], "POST");
}
