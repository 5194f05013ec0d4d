//! Validated values. Handlers parse raw input into these types once; everything below them
//! only ever holds data that passed these rules.

mod link_limit;
pub mod password;
pub mod smtp_reply;
mod status;
mod subscriber_email;
mod subscriber_name;
mod token;

pub use link_limit::LinkLimit;
pub use smtp_reply::{SmtpStage, Verdict, classify_refusal};
pub use status::{
    AutomationMode, DeliveryKind, DeliveryStatus, DigestStatus, EventKind, FailureKind,
    SubscriberStatus,
};
pub use subscriber_email::SubscriberEmail;
pub use subscriber_email::{email_key, mask as mask_address, mask_addresses_in};
pub use subscriber_name::SubscriberName;
pub use token::{Token, hash_email, hash_token};
