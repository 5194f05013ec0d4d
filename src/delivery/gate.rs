//! Which digests may send right now, as this process last saw them. Every claim and every
//! recorded batch refreshes it from the database (so a pause made by another instance or by
//! the CLI arrives within one batch), and a pause or cancel made through this process's own API
//! sets it at once. A sender looks at it just before each message.
//!
//! A refresh carries what the database said when its read began ([`DigestGate::seen`]): a
//! pause set here after that moment is newer than the refresh and stays. Without this, a claim
//! that read "sending" just before the pause committed put "sending" back just after it, and
//! the worker went on sending until the next refresh (seen under load on PostgreSQL: four mails
//! after the pause answered, with two in flight).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::domain::DigestStatus;

#[derive(Clone, Default)]
pub struct DigestGate {
    states: Arc<RwLock<Gate>>,
}

#[derive(Default)]
struct Gate {
    /// Each digest's status and the moment it stands for.
    states: HashMap<i64, (DigestStatus, u64)>,
    /// Counts the statuses set here.
    clock: u64,
}

/// The moment a read of the database began, for [`DigestGate::refresh`].
#[derive(Debug, Clone, Copy)]
pub struct Seen(u64);

impl DigestGate {
    /// A status decided in this process (a pause or cancel through its API): newer than any
    /// read under way.
    pub fn set(&self, digest_id: i64, status: DigestStatus) {
        let mut gate = self.write();
        gate.clock += 1;
        let now = gate.clock;
        gate.put(digest_id, status, now);
    }

    /// Call before reading digest statuses from the database; pass the answer to `refresh`.
    pub fn seen(&self) -> Seen {
        Seen(self.read().clock)
    }

    /// A status read from the database by a read that began at `seen`: applied unless this
    /// process set the digest's status since.
    pub fn refresh(&self, digest_id: i64, status: DigestStatus, seen: Seen) {
        let mut gate = self.write();
        let newer_here = gate
            .states
            .get(&digest_id)
            .is_some_and(|(_, at)| *at > seen.0);
        if !newer_here {
            gate.put(digest_id, status, seen.0);
        }
    }

    /// Whether mail of this digest (or mail of no digest) may go out now.
    pub fn allows(&self, digest_id: Option<i64>) -> bool {
        let Some(digest_id) = digest_id else {
            return true;
        };
        !matches!(
            self.read().states.get(&digest_id),
            Some((
                DigestStatus::Paused | DigestStatus::Cancelled | DigestStatus::Missed,
                _
            ))
        )
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Gate> {
        self.states
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Gate> {
        self.states
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Gate {
    fn put(&mut self, digest_id: i64, status: DigestStatus, at: u64) {
        match status {
            // Finished digests need no gate; forgetting them keeps the map small.
            DigestStatus::Sent => self.states.remove(&digest_id),
            status => self.states.insert(digest_id, (status, at)),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::DigestGate;
    use crate::domain::DigestStatus;

    #[test]
    fn a_refresh_read_before_a_pause_here_does_not_undo_it() {
        let gate = DigestGate::default();
        gate.set(7, DigestStatus::Sending);
        let seen = gate.seen();
        // The pause commits while the claim's read is under way...
        gate.set(7, DigestStatus::Paused);
        // ...and the claim comes back with what it read before.
        gate.refresh(7, DigestStatus::Sending, seen);
        assert!(!gate.allows(Some(7)), "still paused");

        // A read that began after the pause brings news: resumed by another instance.
        let later = gate.seen();
        gate.refresh(7, DigestStatus::Sending, later);
        assert!(gate.allows(Some(7)));
        gate.refresh(8, DigestStatus::Cancelled, later);
        assert!(!gate.allows(Some(8)));
        assert!(gate.allows(None));
    }
}
