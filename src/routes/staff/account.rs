//! A staff member's own account: the optional second factor (an authenticator app, set up with
//! a QR code, with recovery codes shown once).

use actix_web::{HttpRequest, HttpResponse, web};
use rand::RngCore;
use serde::Serialize;
use totp_rs::{Builder, Secret, Totp};

use super::{AdminError, Change, Signed, render, see_other};
use crate::db::staff::{disable_totp, enable_totp, log_activity, unused_recovery_codes};
use crate::startup::AppState;

/// The authenticator of this secret (base32) for this account: SHA-1, 6 digits, 30 s steps, one
/// step of clock skew either way, as every authenticator app understands.
pub fn totp_of(secret: &str, account: &str) -> anyhow::Result<Totp> {
    let secret = Secret::try_from_base32(secret).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    Builder::new()
        .with_secret(secret)
        .with_issuer(Some("Newsletter staff"))
        .with_account_name(account.replace(':', ""))
        .build()
        .map_err(|e| anyhow::anyhow!("the two-factor secret: {e:?}"))
}

#[derive(Serialize)]
struct AccountPage {
    email: String,
    name: Option<String>,
    two_factor: bool,
    recovery_codes_left: i64,
    /// Setting up: the secret, its QR code as SVG, and an error about the code typed.
    setup_secret: Option<String>,
    setup_qr: Option<String>,
    setup_error: Option<String>,
    /// Just turned on: the recovery codes, shown this once.
    recovery_codes: Vec<String>,
}

async fn account_page(
    signed: &Signed,
    request: &HttpRequest,
    state: &AppState,
    mut page: AccountPage,
) -> Result<HttpResponse, AdminError> {
    let id = signed.member.id;
    page.recovery_codes_left = state
        .db
        .run(move |conn| Ok(unused_recovery_codes(conn, id)?))
        .await?;
    render(
        state,
        Some(signed),
        request,
        "account.html",
        "account",
        "Your account",
        page,
    )
}

fn blank(signed: &Signed) -> AccountPage {
    AccountPage {
        email: signed.member.email.clone(),
        name: signed.member.name.clone(),
        two_factor: signed.member.totp_secret.is_some(),
        recovery_codes_left: 0,
        setup_secret: None,
        setup_qr: None,
        setup_error: None,
        recovery_codes: Vec::new(),
    }
}

pub async fn page(
    signed: Signed,
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    let page = blank(&signed);
    account_page(&signed, &request, &state, page).await
}

/// An SVG QR code of the otpauth:// URL, for the authenticator app to scan.
fn qr_svg(totp: &Totp) -> anyhow::Result<String> {
    let url = totp.to_url().map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let code = qrcode::QrCode::new(url.as_bytes())?;
    Ok(code
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build())
}

fn setup_page(
    signed: &Signed,
    secret: String,
    error: Option<String>,
) -> anyhow::Result<AccountPage> {
    let totp = totp_of(&secret, &signed.member.email)?;
    let mut page = blank(signed);
    page.setup_qr = Some(qr_svg(&totp)?);
    page.setup_secret = Some(secret);
    page.setup_error = error;
    Ok(page)
}

pub async fn start_two_factor(
    change: Change,
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    let mut bytes = [0u8; 20];
    rand::rng().fill_bytes(&mut bytes);
    let secret = Secret::from(bytes.to_vec()).to_base32();
    let page = setup_page(&change.staff, secret, None)?;
    account_page(&change.staff, &request, &state, page).await
}

pub async fn confirm_two_factor(
    change: Change,
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    let Change { staff, form } = change;
    let secret = form.get("secret").to_string();
    let code: String = form
        .get("code")
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let totp = totp_of(&secret, &staff.member.email)
        .map_err(|_| AdminError::BadRequest("The setup form was damaged; start again.".into()))?;
    if code.len() != 6 || totp.check_current(&code).is_none() {
        let page = setup_page(
            &staff,
            secret,
            Some("That code is not right. Enter the six digits the app shows now (they change every 30 seconds).".into()),
        )?;
        return account_page(&staff, &request, &state, page).await;
    }
    let codes: Vec<String> = (0..8).map(|_| recovery_code()).collect();
    let (id, actor, stored) = (staff.member.id, staff.actor(), codes.clone());
    state
        .db
        .run(move |conn| {
            enable_totp(conn, id, &secret, &stored)?;
            log_activity(conn, &actor, "turned on two-factor sign-in", "")?;
            Ok(())
        })
        .await?;
    let mut page = blank(&staff);
    page.two_factor = true;
    page.recovery_codes = codes;
    account_page(&staff, &request, &state, page).await
}

/// "k3f9-x2mq-7hd4": 60 random bits, easy to read out and type.
fn recovery_code() -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    let mut bytes = [0u8; 12];
    rand::rng().fill_bytes(&mut bytes);
    let chars: Vec<char> = bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect();
    chars
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-")
}

pub async fn disable_two_factor(
    change: Change,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    let (id, actor) = (change.staff.member.id, change.staff.actor());
    state
        .db
        .run(move |conn| {
            disable_totp(conn, id)?;
            log_activity(conn, &actor, "turned off two-factor sign-in", "")?;
            Ok(())
        })
        .await?;
    Ok(see_other("/admin/account?done=two-factor-off"))
}
