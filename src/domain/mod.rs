//! Validated values. Handlers parse raw input into these types once; everything below them
//! only ever holds data that passed these rules.

mod status;
mod subscriber_email;
mod subscriber_name;
mod token;

pub use status::{DeliveryKind, DeliveryStatus, DigestStatus, EventKind, SubscriberStatus};
pub use subscriber_email::SubscriberEmail;
pub use subscriber_email::mask as mask_address;
pub use subscriber_name::SubscriberName;
pub use token::{Token, hash_email, hash_token};
