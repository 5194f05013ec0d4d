//! `GET /subscribe` (the hosted signup form, no JavaScript needed) and `GET /subscribe/thanks`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Serialize;

use super::PageError;
use super::pages::{Page, render};
use crate::startup::AppState;

#[derive(Serialize, Default)]
pub struct SignupFormPage {
    pub title: String,
    pub action: String,
    pub email: String,
    pub name: String,
    pub error: Option<String>,
}

impl SignupFormPage {
    pub fn new(state: &AppState) -> SignupFormPage {
        SignupFormPage {
            title: state.templates.texts().text("subscribe.title", &[]),
            action: format!("{}/subscriptions", state.settings.base_url()),
            ..SignupFormPage::default()
        }
    }
}

pub async fn subscribe_page(state: web::Data<AppState>) -> Result<HttpResponse, PageError> {
    Ok(render(
        &state,
        "subscribe",
        StatusCode::OK,
        SignupFormPage::new(&state),
    )?)
}

pub async fn thanks_page(state: web::Data<AppState>) -> Result<HttpResponse, PageError> {
    let t = state.templates.texts();
    let page = Page::new(
        &t.text("thanks.title", &[]),
        &[&t.text("thanks.sent", &[]), &t.text("thanks.no_mail", &[])],
    );
    Ok(page.render(&state, StatusCode::OK)?)
}
