//! VERP return paths: every mail's envelope sender is `mail.bounce_address` with a tag naming
//! its delivery (`bounces+1234-5f2c…@news.example.org`), so a bounce that comes back says whose
//! mail it was even when its text names nobody. The tag carries an HMAC of the delivery id,
//! checked without the database: a forged or mangled tag matches nothing. The same tag on the
//! unsubscribe address (`unsubscribe+…@`) makes a per-recipient `mailto:` for List-Unsubscribe.

use hmac::{KeyInit, Mac};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// What a tagged address is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagKind {
    Bounce,
    Unsubscribe,
}

impl TagKind {
    fn local(self) -> &'static str {
        match self {
            TagKind::Bounce => "bounces",
            TagKind::Unsubscribe => "unsubscribe",
        }
    }
}

/// Makes and checks tagged addresses at the domain of `mail.bounce_address`.
#[derive(Clone)]
pub struct Verp {
    /// The bounce address's local part (`bounces`).
    local: String,
    domain: String,
    /// Keyed with the service's secret; cloned for each tag.
    keyed: HmacSha256,
}

impl std::fmt::Debug for Verp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Verp({}@{})", self.local, self.domain)
    }
}

/// Hex characters of the HMAC kept in a tag: 80 bits.
const MAC_HEX: usize = 20;

impl Verp {
    /// `bounce_address` is `local@domain`; `key` the service's secret.
    pub fn new(bounce_address: &str, key: &[u8]) -> anyhow::Result<Verp> {
        let (local, domain) = bounce_address
            .trim()
            .rsplit_once('@')
            .filter(|(l, d)| !l.is_empty() && d.contains('.'))
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "mail.bounce_address {bounce_address:?} must be an address like bounces@news.example.org"
                )
            })?;
        let keyed = HmacSha256::new_from_slice(key)
            .map_err(|e| anyhow::anyhow!("the VERP key does not fit HMAC-SHA256: {e}"))?;
        Ok(Verp {
            local: local.to_string(),
            domain: domain.to_ascii_lowercase(),
            keyed,
        })
    }

    fn mac(&self, kind: TagKind, delivery_id: i64) -> String {
        let mut mac = self.keyed.clone();
        mac.update(kind.local().as_bytes());
        mac.update(&delivery_id.to_be_bytes());
        hex::encode(mac.finalize().into_bytes())[..MAC_HEX].to_string()
    }

    /// The tagged address of a delivery: the envelope sender (bounces) or the unsubscribe
    /// mailbox.
    pub fn address(&self, kind: TagKind, delivery_id: i64) -> String {
        let local = match kind {
            TagKind::Bounce => self.local.as_str(),
            TagKind::Unsubscribe => "unsubscribe",
        };
        format!(
            "{local}+{delivery_id}-{}@{}",
            self.mac(kind, delivery_id),
            self.domain
        )
    }

    /// The delivery a tagged address names, and what for, when its tag is ours.
    pub fn verify(&self, address: &str) -> Option<(TagKind, i64)> {
        let address = address.trim().trim_matches(['<', '>']).to_ascii_lowercase();
        let (local, domain) = address.rsplit_once('@')?;
        if domain != self.domain {
            return None;
        }
        let (prefix, tag) = local.split_once('+')?;
        let kind = if prefix == self.local.to_ascii_lowercase() {
            TagKind::Bounce
        } else if prefix == "unsubscribe" {
            TagKind::Unsubscribe
        } else {
            return None;
        };
        let (id, mac) = tag.split_once('-')?;
        let id: i64 = id.parse().ok()?;
        let expected = self.mac(kind, id);
        // Compared in constant time, as any MAC.
        let same = mac.len() == expected.len()
            && mac
                .bytes()
                .zip(expected.bytes())
                .fold(0u8, |diff, (a, b)| diff | (a ^ b))
                == 0;
        same.then_some((kind, id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_names_its_delivery_and_a_forged_one_names_nothing() {
        let verp = Verp::new("bounces@News.Example.org", b"a secret key").unwrap();
        let address = verp.address(TagKind::Bounce, 1234);
        assert!(address.starts_with("bounces+1234-") && address.ends_with("@news.example.org"));
        assert_eq!(verp.verify(&address), Some((TagKind::Bounce, 1234)));
        // Mail systems may change the letter case of a local part.
        assert_eq!(
            verp.verify(&address.to_uppercase()),
            Some((TagKind::Bounce, 1234))
        );
        let unsubscribe = verp.address(TagKind::Unsubscribe, 1234);
        assert_eq!(
            verp.verify(&unsubscribe),
            Some((TagKind::Unsubscribe, 1234))
        );
        // Another delivery's number with this MAC, another key, another domain: nothing.
        assert_eq!(verp.verify(&address.replace("+1234-", "+1235-")), None);
        assert_eq!(
            verp.verify(&unsubscribe.replace("unsubscribe+", "bounces+")),
            None
        );
        let other = Verp::new("bounces@news.example.org", b"another key").unwrap();
        assert_eq!(other.verify(&address), None);
        assert_eq!(
            verp.verify(&address.replace("example.org", "example.com")),
            None
        );
        assert_eq!(verp.verify("bounces@news.example.org"), None);
        assert!(Verp::new("no-at-sign", b"k").is_err());
    }
}
