//! The optional name a person gives at signup.

const MAX_LEN: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriberName(String);

impl SubscriberName {
    /// An empty or blank name is no name; otherwise at most 100 characters, no control characters.
    pub fn parse(raw: Option<&str>) -> Result<Option<SubscriberName>, String> {
        let Some(name) = raw.map(str::trim).filter(|n| !n.is_empty()) else {
            return Ok(None);
        };
        if name.chars().count() > MAX_LEN {
            return Err(format!("name must be at most {MAX_LEN} characters"));
        }
        if name.chars().any(char::is_control) {
            return Err("name must not contain control characters".into());
        }
        Ok(Some(SubscriberName(name.to_string())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::SubscriberName;

    #[test]
    fn blank_names_are_no_name() {
        assert_eq!(SubscriberName::parse(Some("  ")).unwrap(), None);
        assert_eq!(SubscriberName::parse(None).unwrap(), None);
    }

    #[test]
    fn names_are_trimmed_and_limited() {
        assert_eq!(
            SubscriberName::parse(Some(" Zoë "))
                .unwrap()
                .unwrap()
                .as_str(),
            "Zoë"
        );
        assert!(SubscriberName::parse(Some(&"x".repeat(101))).is_err());
        assert!(SubscriberName::parse(Some("Eve\r\nBcc: x@y.org")).is_err());
    }
}
