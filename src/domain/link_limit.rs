//! How many confirmation links a pending address gets: enough for a lost mail, too few for
//! someone to flood a stranger's inbox by signing them up again and again.

use chrono::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkLimit {
    per_hour: i64,
}

impl LinkLimit {
    pub fn per_hour(per_hour: i64) -> LinkLimit {
        LinkLimit { per_hour }
    }

    /// The time over which links are counted.
    pub fn window() -> Duration {
        Duration::hours(1)
    }

    /// Whether one more link may go to an address that was sent `recent` links in the window.
    pub fn allows_another(self, recent: i64) -> bool {
        recent < self.per_hour
    }
}
