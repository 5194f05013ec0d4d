//! An email address a person typed into the signup box, checked and normalized.

use std::fmt;

use validator::ValidateEmail;

const MAX_LEN: usize = 254;
const MAX_LOCAL_LEN: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriberEmail(String);

impl SubscriberEmail {
    /// Trims, checks and normalizes an address: one `local@domain`, no display name, no control
    /// characters, at most 254 characters; the domain is lower-cased and IDN domains are kept in
    /// their Unicode form, so `Bücher.example` and `xn--bcher-kva.example` are the same address.
    pub fn parse(raw: &str) -> Result<SubscriberEmail, String> {
        let address = raw.trim();
        if address.is_empty() {
            return Err("email is required".into());
        }
        if address.chars().count() > MAX_LEN {
            return Err(format!("email must be at most {MAX_LEN} characters"));
        }
        if address.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err("email must not contain spaces or control characters".into());
        }
        if address.contains(['<', '>', ',', ';', '"', '(', ')', '[', ']', '\\']) {
            return Err("email must be a plain address like name@example.org".into());
        }
        let Some((local, domain)) = address.split_once('@') else {
            return Err("email must contain an @".into());
        };
        if domain.contains('@') {
            return Err("email must contain exactly one @".into());
        }
        if local.is_empty() || local.chars().count() > MAX_LOCAL_LEN {
            return Err(format!(
                "the part of email before @ must have 1 to {MAX_LOCAL_LEN} characters"
            ));
        }
        if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            return Err("email has misplaced dots before the @".into());
        }
        let ascii_domain = idna::domain_to_ascii(domain)
            .map_err(|_| "the domain of email is not a valid domain name".to_string())?;
        if !ascii_domain.contains('.') || ascii_domain.ends_with('.') {
            return Err("the domain of email must be a full domain name like example.org".into());
        }
        let (unicode_domain, _) = idna::domain_to_unicode(&ascii_domain);
        // The local part is checked against the ASCII rules when it is ASCII, and as an
        // internationalized (RFC 6531) local part otherwise.
        let ascii_form = format!(
            "{}@{ascii_domain}",
            if local.is_ascii() { local } else { "x" }
        );
        if !ascii_form.validate_email() {
            return Err("email is not a valid address".into());
        }
        if !local.is_ascii()
            && !local
                .chars()
                .all(|c| c.is_alphanumeric() || "._+-".contains(c))
        {
            return Err("email is not a valid address".into());
        }
        // Whatever we accept, the mailer must be able to send to.
        if lettre::Address::new(local, &ascii_domain).is_err() {
            return Err("email is not a valid address".into());
        }
        Ok(SubscriberEmail(format!("{local}@{unicode_domain}")))
    }

    /// Trusts a value that was validated before it was stored.
    pub fn from_stored(stored: String) -> SubscriberEmail {
        SubscriberEmail(stored)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Who this address is: see [`email_key`].
    pub fn key(&self) -> String {
        email_key(&self.0)
    }

    /// The address as the mail envelope needs it: the domain in its ASCII (punycode) form.
    pub fn to_address(&self) -> Result<lettre::Address, lettre::address::AddressError> {
        let (local, domain) = self.0.rsplit_once('@').unwrap_or((&self.0, ""));
        let ascii = idna::domain_to_ascii(domain)
            .map_err(|_| lettre::address::AddressError::InvalidDomain)?;
        lettre::Address::new(local, ascii)
    }

    /// The address for logs: `al***@example.org`.
    pub fn masked(&self) -> String {
        mask(&self.0)
    }
}

/// The identity of an address: its ASCII letters in lower case, so `Maria.Gonzalez@Example.org`
/// and `maria.gonzalez@example.org` are one subscriber. (The domain is lower-cased already.)
/// Only ASCII is folded, exactly as the migration that introduced the key did in SQL, so keys
/// are the same on every backend; local parts in other scripts keep their case.
pub fn email_key(email: &str) -> String {
    email.to_ascii_lowercase()
}

/// Every address in `text` (an SMTP reply, say) masked as [`mask`] does.
pub fn mask_addresses_in(text: &str) -> String {
    let is_local = |c: char| c.is_alphanumeric() || "._%+-'=".contains(c);
    let is_domain = |c: char| c.is_alphanumeric() || ".-".contains(c);
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '@' {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let mut start = i;
        while start > 0 && is_local(chars[start - 1]) {
            start -= 1;
        }
        let mut end = i + 1;
        while end < chars.len() && is_domain(chars[end]) {
            end += 1;
        }
        let local_len = i - start;
        if local_len == 0 || end == i + 1 {
            out.push('@');
            i += 1;
            continue;
        }
        // Drop the local part already copied and put the masked form instead.
        for _ in 0..local_len {
            out.pop();
        }
        let address: String = chars[start..end].iter().collect();
        out.push_str(&mask(&address));
        i = end;
    }
    out
}

/// Masks the local part of an address for logs.
pub fn mask(address: &str) -> String {
    match address.rsplit_once('@') {
        Some((local, domain)) => {
            let shown: String = local.chars().take(2).collect();
            format!("{shown}***@{domain}")
        }
        None => "***".into(),
    }
}

impl fmt::Display for SubscriberEmail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for SubscriberEmail {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::SubscriberEmail;

    #[test]
    fn plain_addresses_are_accepted_and_the_domain_is_lower_cased() {
        let email = SubscriberEmail::parse("  Alice.Smith+news@Example.ORG ").unwrap();
        assert_eq!(email.as_str(), "Alice.Smith+news@example.org");
    }

    #[test]
    fn idn_domains_are_stored_in_one_unicode_form() {
        let a = SubscriberEmail::parse("dörte@Bücher.example").unwrap();
        let b = SubscriberEmail::parse("dörte@xn--bcher-kva.example").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.as_str(), "dörte@bücher.example");
        assert_eq!(a.to_address().unwrap().domain(), "xn--bcher-kva.example");
    }

    #[test]
    fn hostile_or_malformed_addresses_are_refused() {
        for bad in [
            "",
            "   ",
            "not-an-email",
            "a@b@c.org",
            "x\r\nBcc: v@evil.org@example.org",
            "Alice <alice@example.org>",
            "alice@example.org, bob@example.org",
            "alice@localhost",
            "alice@exa mple.org",
            ".alice@example.org",
            "al..ice@example.org",
            "al\0ice@example.org",
            "\"quoted\"@example.org",
            &format!("{}@example.org", "a".repeat(65)),
            &format!("a@{}.org", "b".repeat(250)),
        ] {
            assert!(SubscriberEmail::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn errors_name_the_field() {
        let err = SubscriberEmail::parse("nope").unwrap_err();
        assert!(err.contains("email"), "{err}");
    }

    #[test]
    fn the_key_ignores_the_case_of_ascii_letters() {
        let a = SubscriberEmail::parse("Maria.Gonzalez@Example.org").unwrap();
        let b = SubscriberEmail::parse("maria.gonzalez@example.org").unwrap();
        assert_ne!(a, b, "the address is kept as typed");
        assert_eq!(a.key(), b.key());
        assert_eq!(a.key(), "maria.gonzalez@example.org");
    }

    #[test]
    fn addresses_inside_smtp_replies_are_masked() {
        assert_eq!(
            super::mask_addresses_in(
                "550 5.1.1 <alice.smith@example.org>: Recipient address rejected; from=<news@clinic.example>"
            ),
            "550 5.1.1 <al***@example.org>: Recipient address rejected; from=<ne***@clinic.example>"
        );
        assert_eq!(super::mask_addresses_in("a lone @ sign"), "a lone @ sign");
    }

    #[test]
    fn masked_addresses_hide_the_local_part() {
        let email = SubscriberEmail::parse("alice@example.org").unwrap();
        assert_eq!(email.masked(), "al***@example.org");
    }

    proptest::proptest! {
        #[test]
        fn parsing_never_panics_and_accepts_only_what_lettre_can_send_to(raw in "\\PC{0,80}") {
            if let Ok(email) = SubscriberEmail::parse(&raw) {
                proptest::prop_assert!(email.to_address().is_ok(), "{raw:?}");
                proptest::prop_assert!(!email.as_str().chars().any(char::is_control));
            }
        }

        #[test]
        fn address_like_input_round_trips_through_lettre(
            local in "[a-zA-Z0-9._%+'-]{1,30}|[a-zà-ÿ]{1,10}",
            domain in "([a-z0-9-]{1,20}|[a-zà-ÿ]{1,10})\\.[a-z]{2,6}",
            noise in "[ \\t]{0,2}",
        ) {
            let raw = format!("{noise}{local}@{domain}{noise}");
            if let Ok(email) = SubscriberEmail::parse(&raw) {
                let address = email.to_address();
                proptest::prop_assert!(address.is_ok(), "{raw:?}");
                let mailbox = lettre::message::Mailbox::new(None, address.unwrap_or_else(|_| unreachable!()));
                let built = lettre::Message::builder()
                    .from("n@example.org".parse().unwrap_or_else(|_| unreachable!()))
                    .to(mailbox)
                    .body(String::from("x"));
                proptest::prop_assert!(built.is_ok(), "{raw:?}");
            }
        }
    }
}
