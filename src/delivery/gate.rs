//! Which digests may send right now, as this process last saw them. Every claim and every
//! recorded batch refreshes it from the database (so a pause made by another instance or by
//! the CLI arrives within one batch), and a pause or cancel made through this process's own API
//! sets it at once. A sender looks at it just before each message.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::domain::DigestStatus;

#[derive(Clone, Default)]
pub struct DigestGate {
    states: Arc<RwLock<HashMap<i64, DigestStatus>>>,
}

impl DigestGate {
    pub fn set(&self, digest_id: i64, status: DigestStatus) {
        let mut states = self
            .states
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match status {
            // Finished digests need no gate; forgetting them keeps the map small.
            DigestStatus::Sent => states.remove(&digest_id),
            status => states.insert(digest_id, status),
        };
    }

    /// Whether mail of this digest (or mail of no digest) may go out now.
    pub fn allows(&self, digest_id: Option<i64>) -> bool {
        let Some(digest_id) = digest_id else {
            return true;
        };
        let states = self
            .states
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        !matches!(
            states.get(&digest_id),
            Some(DigestStatus::Paused | DigestStatus::Cancelled | DigestStatus::Missed)
        )
    }
}
