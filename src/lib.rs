//! newsletter: double opt-in signup, digests and a delivery queue over SMTP.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod automations;
pub mod bounces;
pub mod cli;
pub mod configuration;
pub mod db;
pub mod delivery;
pub mod digests;
pub mod domain;
pub mod email;
pub mod feeds;
pub mod list_csv;
pub mod metrics;
pub mod routes;
pub mod scheduler;
pub mod startup;
pub mod telemetry;

/// Chooses rustls' process-wide crypto provider (ring, as lettre uses) before any TLS client
/// is built. Safe to call more than once.
pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
