//! DKIM signing keys from `mail.dkim.*`: RSA as PKCS#1 or PKCS#8 PEM, Ed25519 as PKCS#8 PEM
//! or a base64 seed, and the header list RFC 8058 asks to be signed.

use anyhow::Context;
use base64::Engine;
use lettre::message::dkim::{
    DkimCanonicalization, DkimCanonicalizationType, DkimConfig, DkimSigningAlgorithm,
    DkimSigningKey,
};
use lettre::message::header::HeaderName;

use crate::configuration::DkimSettings;

/// The DKIM signer from `mail.dkim.*`, or `None` when signing is off. Reads RSA keys as PKCS#1
/// or PKCS#8 PEM (what OpenSSL 3 writes), and Ed25519 keys as PKCS#8 PEM or a base64 seed.
pub fn load_dkim(settings: &DkimSettings) -> anyhow::Result<Option<DkimConfig>> {
    let (Some(domain), Some(selector), Some(path)) = (
        &settings.domain,
        &settings.selector,
        &settings.private_key_file,
    ) else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading mail.dkim.private_key_file {}", path.display()))?;
    let key = parse_dkim_key(&text)
        .with_context(|| format!("mail.dkim.private_key_file {}", path.display()))?;
    // RFC 8058 asks that List-Unsubscribe and List-Unsubscribe-Post be signed. Content-Type is
    // left out: lettre 0.11 canonicalizes the folded multipart Content-Type differently from
    // what it writes, so signatures over it fail every verifier (tests/api/dkim.rs).
    let headers = [
        "From",
        "To",
        "Subject",
        "Date",
        "Message-ID",
        "MIME-Version",
        "List-Id",
        "List-Unsubscribe",
        "List-Unsubscribe-Post",
    ]
    .into_iter()
    .map(HeaderName::new_from_ascii_str)
    .collect();
    let canonicalization = DkimCanonicalization {
        header: DkimCanonicalizationType::Relaxed,
        body: DkimCanonicalizationType::Relaxed,
    };
    Ok(Some(DkimConfig::new(
        selector.clone(),
        domain.clone(),
        key,
        headers,
        canonicalization,
    )))
}

fn parse_dkim_key(text: &str) -> anyhow::Result<DkimSigningKey> {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::pkcs8::DecodePrivateKey;

    let text = text.trim();
    if text.contains("BEGIN RSA PRIVATE KEY") {
        return DkimSigningKey::new(text, DkimSigningAlgorithm::Rsa)
            .map_err(|e| anyhow::anyhow!("bad RSA key: {e}"));
    }
    if text.contains("BEGIN PRIVATE KEY") {
        if let Ok(rsa_key) = rsa::RsaPrivateKey::from_pkcs8_pem(text) {
            let pkcs1 = rsa_key
                .to_pkcs1_pem(rsa::pkcs8::LineEnding::LF)
                .context("converting the RSA key")?;
            return DkimSigningKey::new(&pkcs1, DkimSigningAlgorithm::Rsa)
                .map_err(|e| anyhow::anyhow!("bad RSA key: {e}"));
        }
        // An Ed25519 PKCS#8 key is a fixed 16-byte prefix and the 32-byte seed.
        let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .context("the PEM is not base64")?;
        if der.len() == 48 {
            let seed = base64::engine::general_purpose::STANDARD.encode(&der[16..]);
            return DkimSigningKey::new(&seed, DkimSigningAlgorithm::Ed25519)
                .map_err(|e| anyhow::anyhow!("bad Ed25519 key: {e}"));
        }
        anyhow::bail!("a PKCS#8 key that is neither RSA nor Ed25519");
    }
    DkimSigningKey::new(text, DkimSigningAlgorithm::Ed25519)
        .map_err(|e| anyhow::anyhow!("not a PEM RSA key nor a base64 Ed25519 seed: {e}"))
}
