//! Mail that comes back: bounces, complaints, automatic replies and unsubscribe requests, read
//! and classified ([`classify`]), tied to our mail by VERP tags ([`Verp`]) or by recipient, and
//! acted on ([`process`]).

mod classify;
mod inbound;
pub mod listener;
mod verp;

pub use classify::{BounceClass, Finding, classify, judge};
pub use inbound::{Handled, MAX_INBOUND_BYTES, process};
pub use verp::{TagKind, Verp};
