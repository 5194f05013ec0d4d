//! Black-box tests through the HTTP API, a real database and a real SMTP server.

mod cli;
mod delivery;
mod digests;
mod dkim;
mod health;
mod helpers;
mod subscriptions;
mod subscriptions_confirm;
mod unsubscribe;
