use newsletter::startup::Application;

use crate::helpers::{spawn_app, test_settings};

#[tokio::test]
async fn health_answers_ok_when_the_database_answers() {
    let app = spawn_app().await;
    let response = app.get("/health").await;
    assert_eq!(response.status().as_u16(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
}

#[tokio::test]
async fn an_unreachable_database_stops_start_up_with_its_cause() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings(1, dir.path());
    settings.database.url = "postgres://postgres@127.0.0.1:1/nothing".to_string().into();
    let error = Application::build(settings, false)
        .err()
        .expect("start-up fails");
    let message = format!("{error:#}");
    assert!(message.contains("connecting to the database"), "{message}");
}

#[tokio::test]
async fn an_unknown_database_scheme_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings(1, dir.path());
    settings.database.url = "mysql://localhost/x".to_string().into();
    let message = format!("{:#}", Application::build(settings, false).err().unwrap());
    assert!(message.contains("database.url"), "{message}");
}
