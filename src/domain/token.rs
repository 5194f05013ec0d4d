//! Secret tokens in links and staff credentials: 256 random bits, shown once, stored as SHA-256.

use rand::RngCore;
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// A new random token: 32 bytes from the OS-seeded CSPRNG, hex-encoded (64 characters).
    pub fn generate() -> Token {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Token(hex::encode(bytes))
    }

    /// A token from a link; `None` when it cannot be one of ours, so it is never looked up.
    pub fn parse(raw: &str) -> Option<Token> {
        let ok = raw.len() == 64 && raw.bytes().all(|b| b.is_ascii_hexdigit());
        ok.then(|| Token(raw.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What is stored in the database.
    pub fn hash(&self) -> String {
        hash_token(&self.0)
    }
}

pub fn hash_token(raw: &str) -> String {
    hex::encode(Sha256::digest(raw.as_bytes()))
}

/// The suppression hash of an erased address (lower-cased, so case variants match too).
pub fn hash_email(email: &str) -> String {
    hex::encode(Sha256::digest(email.to_lowercase().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::Token;

    #[test]
    fn tokens_are_random_and_round_trip() {
        let a = Token::generate();
        let b = Token::generate();
        assert_ne!(a, b);
        assert_eq!(Token::parse(a.as_str()), Some(a.clone()));
        assert_ne!(a.hash(), a.as_str());
    }

    #[test]
    fn malformed_tokens_are_refused_before_any_lookup() {
        assert_eq!(Token::parse("forged0000000000000000000000"), None);
        assert_eq!(Token::parse(&"g".repeat(64)), None);
    }
}
