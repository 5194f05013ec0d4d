//! Mail that comes back: bounces, complaints and automatic replies, read and classified (see
//! [`classify`]).

mod classify;

pub use classify::{BounceClass, Finding, classify, judge};
