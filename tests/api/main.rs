//! Black-box tests through the HTTP API, a real database and a real SMTP server.

mod cli;
mod crash;
mod database_faults;
mod delivery;
mod digests;
mod dkim;
mod health;
mod helpers;
mod hostile_input;
mod signup_batches;
mod smtp_faults;
mod subscriptions;
mod subscriptions_confirm;
mod unsubscribe;
