//! Staff passwords: at least [`MIN_LENGTH`] characters, not one of the most common ones, hashed
//! with Argon2id (the `argon2` crate's defaults: 19 MiB, 2 passes, the OWASP minimum).

use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use secrecy::{ExposeSecret, SecretString};

pub const MIN_LENGTH: usize = 10;
const MAX_LENGTH: usize = 1024;

/// Passwords of ten characters or more that lists of leaked passwords put at the top; a person
/// who picks one is asked for another. (Shorter ones fail the length rule anyway.)
const COMMON: &[&str] = &[
    "1234567890",
    "12345678910",
    "123456789a",
    "0123456789",
    "0987654321",
    "1111111111",
    "1q2w3e4r5t",
    "1qaz2wsx3edc",
    "abcdefghij",
    "asdfghjkl;",
    "iloveyou12",
    "password1",
    "password12",
    "password123",
    "password1234",
    "passw0rd123",
    "p@ssw0rd123",
    "qwertyuiop",
    "qwerty1234",
    "qwerty12345",
    "qwerty123456",
    "q1w2e3r4t5",
    "zaq12wsxcde",
    "1234qwerasdf",
    "letmein123",
    "welcome123",
    "welcome1234",
    "administrator",
    "admin12345",
    "admin123456",
    "changeme123",
    "newsletter",
    "newsletter1",
    "newsletter123",
    "football123",
    "baseball123",
    "princess123",
    "sunshine123",
    "trustno1234",
    "monkey12345",
    "dragon12345",
    "superman123",
    "1234567890a",
    "aaaaaaaaaa",
    "abcd123456",
    "abc1234567",
    "123123123123",
    "987654321a",
    "qwertyuiop1",
    "passwordpassword",
    "iloveyou123",
    "mypassword",
    "mypassword1",
    "secret1234",
];

/// Why a new password was refused, in words for the person choosing it.
pub fn check_new_password(password: &str) -> Result<(), String> {
    let length = password.chars().count();
    if length < MIN_LENGTH {
        return Err(format!(
            "Choose a password of at least {MIN_LENGTH} characters (a few unrelated words are easy to remember)."
        ));
    }
    if length > MAX_LENGTH {
        return Err(format!(
            "A password can have at most {MAX_LENGTH} characters."
        ));
    }
    let lower = password.to_lowercase();
    if COMMON.contains(&lower.as_str())
        || lower
            .chars()
            .all(|c| c == lower.chars().next().unwrap_or(' '))
    {
        return Err("That password is one of the most common ones; choose another.".into());
    }
    Ok(())
}

/// The PHC string stored for `password` (random salt). Takes tens of milliseconds of CPU: call
/// it on a blocking thread.
pub fn hash_password(password: &SecretString) -> anyhow::Result<String> {
    let hash = Argon2::default()
        .hash_password(password.expose_secret().as_bytes())
        .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))?;
    Ok(hash.to_string())
}

/// Whether `password` matches `stored`. With no stored hash (an unknown address, an account
/// whose password is not set yet) it checks against a dummy hash, so that every sign-in costs
/// the same time and the answer does not tell whether the address has an account.
pub fn verify_password(password: &SecretString, stored: Option<&str>) -> bool {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let dummy = DUMMY.get_or_init(|| {
        hash_password(&SecretString::from("not a password anyone has".to_string()))
            .unwrap_or_default()
    });
    let (phc, real) = match stored {
        Some(s) => (s, true),
        None => (dummy.as_str(), false),
    };
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let matches = Argon2::default()
        .verify_password(password.expose_secret().as_bytes(), &parsed)
        .is_ok();
    matches && real
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_common_passwords_are_refused() {
        assert!(
            check_new_password("short")
                .unwrap_err()
                .contains("at least 10")
        );
        assert!(
            check_new_password("Password123")
                .unwrap_err()
                .contains("common")
        );
        assert!(
            check_new_password("zzzzzzzzzzzz")
                .unwrap_err()
                .contains("common")
        );
        assert!(check_new_password("correct horse battery").is_ok());
    }

    #[test]
    fn a_hash_verifies_only_its_password() {
        let hash = hash_password(&SecretString::from("correct horse battery".to_string())).unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password(
            &SecretString::from("correct horse battery".to_string()),
            Some(&hash)
        ));
        assert!(!verify_password(
            &SecretString::from("correct horse batterz".to_string()),
            Some(&hash)
        ));
        assert!(!verify_password(
            &SecretString::from("not a password anyone has".to_string()),
            None
        ));
    }
}
