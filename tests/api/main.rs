//! Black-box tests through the HTTP API, a real database and a real SMTP server.

mod browser;
mod cli;
mod crash;
mod database_faults;
mod delivery;
mod digest_control;
mod digests;
mod dkim;
mod feeds;
mod health;
mod helpers;
mod hostile_input;
mod identity;
mod leaving;
mod list_io;
mod logs;
mod proxies;
mod queue;
mod signup_batches;
mod smtp_faults;
mod staff_pages;
mod subscriptions;
mod subscriptions_confirm;
mod timeouts;
mod unsubscribe;
