//! The states stored in TEXT columns, with one spelling each.

macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(text: &str) -> Option<$name> {
                match text { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(SubscriberStatus {
    Pending => "pending",
    Confirmed => "confirmed",
    Unsubscribed => "unsubscribed",
    Bounced => "bounced",
});

text_enum!(
    /// Kinds of entries in the consent ledger.
    EventKind {
        Subscribed => "subscribed",
        Confirmed => "confirmed",
        Unsubscribed => "unsubscribed",
        Bounced => "bounced",
        Erased => "erased",
        /// Records of one address that differed only in letter case became one.
        Merged => "merged",
        Complained => "complained",
    }
);

text_enum!(DeliveryKind {
    Confirmation => "confirmation",
    Welcome => "welcome",
    Digest => "digest",
    Test => "test",
});

text_enum!(DeliveryStatus {
    Queued => "queued",
    Sending => "sending",
    Sent => "sent",
    Failed => "failed",
    Skipped => "skipped",
});

text_enum!(DigestStatus {
    Draft => "draft",
    Scheduled => "scheduled",
    Sending => "sending",
    Paused => "paused",
    Cancelled => "cancelled",
    Missed => "missed",
    Sent => "sent",
});

impl DigestStatus {
    /// Not begun sending: a draft, a scheduled digest, one that missed its time. Staff can
    /// still send, schedule or change it.
    pub const UNSENT: [DigestStatus; 3] = [
        DigestStatus::Draft,
        DigestStatus::Scheduled,
        DigestStatus::Missed,
    ];

    pub fn is_unsent(self) -> bool {
        DigestStatus::UNSENT.contains(&self)
    }
}

text_enum!(
    /// Why a delivery failed for good.
    FailureKind {
        /// The mailbox does not exist: the subscriber is marked bounced.
        Bounce => "bounce",
        /// Something about the recipient (a full mailbox, a refusal of that address) that does
        /// not prove the mailbox is gone.
        Recipient => "recipient",
        /// A refusal about us or our mail (policy, reputation, relaying, content): it counts
        /// towards pausing the digest, and resuming tries it again.
        Sender => "sender",
        /// Our side could not build or finish the mail.
        Local => "local",
    }
);

impl SubscriberStatus {
    /// A `status` filter as staff type it: empty means all.
    pub fn parse_filter(text: Option<&str>) -> Result<Option<SubscriberStatus>, String> {
        match text.map(str::trim).filter(|t| !t.is_empty()) {
            None => Ok(None),
            Some(text) => SubscriberStatus::parse(text)
                .map(Some)
                .ok_or_else(|| "status must be pending, confirmed, unsubscribed or bounced".into()),
        }
    }
}

impl DigestStatus {
    /// Whether the digest's mail may go out now.
    pub fn is_sending(self) -> bool {
        self == DigestStatus::Sending
    }
}

impl DeliveryKind {
    /// Mail a person is waiting for goes before bulk mail.
    pub fn priority(self) -> i32 {
        match self {
            DeliveryKind::Digest => 1,
            _ => 0,
        }
    }
}

text_enum!(
    /// What an automation does with the digest it makes.
    AutomationMode {
        /// Leaves it as a draft and mails staff "ready for review".
        Draft => "draft",
        /// Sends it.
        Send => "send",
    }
);
