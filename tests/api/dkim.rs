//! DKIM: mail signed with the operator's key verifies with an independent verifier (mail-auth),
//! including the RFC 8058 headers.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Instant;

use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::verify::DomainKey;
use mail_auth::{
    AuthenticatedMessage, DkimResult, MessageAuthenticator, Parameters, ResolverCache, Txt,
};

use crate::helpers::{ReceivedMail, spawn_app_with};

/// The DNS TXT records a verifier would look up, served from memory.
#[derive(Default)]
struct TxtRecords(Mutex<HashMap<Box<str>, Txt>>);

impl ResolverCache<Box<str>, Txt> for TxtRecords {
    fn get<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.lock().unwrap().get(name).cloned()
    }

    fn remove<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.lock().unwrap().remove(name)
    }

    fn insert(&self, key: Box<str>, value: Txt, _valid_until: Instant) {
        self.0.lock().unwrap().insert(key, value);
    }
}

async fn verify(mail: &ReceivedMail, record: &str) -> Vec<DkimResult> {
    let records = TxtRecords::default();
    let key = DomainKey::parse(record.as_bytes()).unwrap();
    records.insert(
        "news._domainkey.clinic.example.".into(),
        Txt::from(key),
        Instant::now(),
    );
    let authenticator = MessageAuthenticator::new_cloudflare().unwrap();
    let message = AuthenticatedMessage::parse(&mail.raw).unwrap();
    authenticator
        .verify_dkim(Parameters::new(&message).with_txt_cache(&records))
        .await
        .into_iter()
        .map(|output| output.result().clone())
        .collect()
}

fn fixture(name: &str) -> String {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
        .display()
        .to_string()
}

async fn signed_welcome_mail(key_file: &str) -> (ReceivedMail, ReceivedMail) {
    let key_file = fixture(key_file);
    let app = spawn_app_with(move |s| {
        s.mail.dkim.domain = Some("clinic.example".into());
        s.mail.dkim.selector = Some("news".into());
        s.mail.dkim.private_key_file = Some(key_file.into());
    })
    .await;
    let confirmation = app.confirmed_subscriber("alice@example.org").await;
    let welcome = app.smtp.wait_for("alice@example.org", 2).await.remove(1);
    (confirmation, welcome)
}

#[tokio::test]
async fn mail_signed_with_a_pkcs8_rsa_key_verifies_and_signs_the_unsubscribe_headers() {
    let (confirmation, welcome) = signed_welcome_mail("dkim-rsa-pkcs8.pem").await;
    let public = std::fs::read_to_string(fixture("dkim-rsa.pub.b64")).unwrap();
    let record = format!("v=DKIM1; k=rsa; p={}", public.trim());
    assert_eq!(verify(&confirmation, &record).await, [DkimResult::Pass]);
    assert_eq!(verify(&welcome, &record).await, [DkimResult::Pass]);
    let signature = welcome
        .header("DKIM-Signature")
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        signature.contains("d=clinic.example") && signature.contains("s=news"),
        "{signature}"
    );
    assert!(
        signature.contains("list-unsubscribe") && signature.contains("list-unsubscribe-post"),
        "{signature}"
    );

    // A mail changed on the way does not verify: the check really checks.
    let mut tampered = welcome.clone();
    let text = String::from_utf8(tampered.raw).unwrap().replacen(
        "Subject: Welcome",
        "Subject: Welcomx",
        1,
    );
    tampered.raw = text.into_bytes();
    assert_ne!(verify(&tampered, &record).await, [DkimResult::Pass]);
}

#[tokio::test]
async fn mail_signed_with_an_ed25519_key_verifies() {
    let (_, welcome) = signed_welcome_mail("dkim-ed25519-pkcs8.pem").await;
    let public = std::fs::read_to_string(fixture("dkim-ed25519.pub.b64")).unwrap();
    let record = format!("v=DKIM1; k=ed25519; p={}", public.trim());
    assert_eq!(verify(&welcome, &record).await, [DkimResult::Pass]);
}

#[tokio::test]
async fn a_missing_or_broken_key_stops_start_up_with_the_key_named() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.pem");
    std::fs::write(
        &broken,
        "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    for key_file in [dir.path().join("missing.pem"), broken] {
        let mut settings = crate::helpers::test_settings(1, dir.path());
        settings.mail.dkim.domain = Some("clinic.example".into());
        settings.mail.dkim.selector = Some("news".into());
        settings.mail.dkim.private_key_file = Some(key_file);
        let error = newsletter::startup::Application::build(settings, false)
            .err()
            .expect("start-up fails");
        assert!(
            format!("{error:#}").contains("mail.dkim.private_key_file"),
            "{error:#}"
        );
    }
}
