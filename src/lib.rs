//! newsletter: double opt-in signup, digests and a delivery queue over SMTP.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod cli;
pub mod configuration;
pub mod db;
pub mod delivery;
pub mod digest;
pub mod domain;
pub mod email;
pub mod routes;
pub mod startup;
pub mod telemetry;
