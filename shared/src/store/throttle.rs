//! The login throttle: attempts reserved before a password is hashed, and the growing
//! throttle that failures start. The stores apply exactly these rules atomically.

/// Login-attempt bookkeeping for one username, kept whether or not the user exists. An
/// attempt is reserved before the password is hashed, so parallel guesses cannot outrun it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoginThrottle {
    /// Attempts reserved since the counter was last reset (finished or still in flight).
    pub attempts: u32,
    /// Attempts allowed before the next throttle period ends: [`THROTTLE_AFTER_FAILURES`]
    /// at first, then one more per throttle period (0 reads as the first).
    pub allowed: u32,
    /// When the last attempt was reserved (epoch seconds).
    pub last_attempt_at: u64,
    /// No attempt is reserved before this instant (epoch seconds); 0 when not throttled.
    pub throttled_until: u64,
}

/// Attempts within this many seconds of each other count together.
pub const THROTTLE_WINDOW_SECS: u64 = 15 * 60;
/// The failure that starts throttling: at most this many passwords are checked per window.
pub const THROTTLE_AFTER_FAILURES: u32 = 5;
/// The first throttle period; each further failure doubles it, up to the window.
pub const THROTTLE_BASE_SECS: u64 = 30;
/// A reserved attempt that never reported (the function crashed or timed out, or its
/// failure could not be recorded) stops blocking the next one after this long: far longer
/// than a password check, so it never lets a sixth guess beside five running ones.
pub const ATTEMPT_LEASE_SECS: u64 = 30;

/// The answer to a reservation of a login attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptReservation {
    /// The password may be checked; this is the `attempts`-th attempt of the window.
    Granted {
        /// The attempt's number, for [`super::UserStore::record_failure`].
        attempts: u32,
    },
    /// Throttled, or every allowed attempt is already taken: 429.
    Refused {
        /// Seconds until an attempt may be reserved again.
        retry_after_secs: u64,
    },
}

impl LoginThrottle {
    /// Seconds until the next attempt is allowed, when throttled now.
    pub fn retry_after(&self, now: u64) -> Option<u64> {
        (self.throttled_until > now).then(|| self.throttled_until - now)
    }

    /// Whether the counter went quiet for a whole window, so the next attempt starts over.
    pub fn is_stale(&self, now: u64) -> bool {
        now.saturating_sub(self.last_attempt_at) > THROTTLE_WINDOW_SECS
    }

    /// Attempts allowed in all before the current throttle period ends.
    pub fn allowed(&self) -> u32 {
        self.allowed.max(THROTTLE_AFTER_FAILURES)
    }

    /// Reserves one attempt: refused while throttled or while every allowed attempt is
    /// taken (checks still in flight count). The stores apply exactly this rule atomically.
    pub fn reserve(&mut self, now: u64) -> AttemptReservation {
        if self.is_stale(now) {
            *self = Self::default();
        }
        if let Some(retry_after_secs) = self.refusal(now) {
            return AttemptReservation::Refused { retry_after_secs };
        }
        self.attempts += 1;
        self.last_attempt_at = now;
        AttemptReservation::Granted { attempts: self.attempts }
    }

    /// Seconds until an attempt may be reserved, when none may be now: while throttled, or
    /// while every allowed attempt is taken and the last one's lease runs.
    pub fn refusal(&self, now: u64) -> Option<u64> {
        if let Some(secs) = self.retry_after(now) {
            return Some(secs);
        }
        // The allowed attempts are being checked right now; their answers decide.
        let lease_ends = self.last_attempt_at + ATTEMPT_LEASE_SECS;
        (self.attempts >= self.allowed() && now < lease_ends).then(|| lease_ends - now)
    }

    /// The throttle that the failure of attempt number `attempts` calls for: it starts at
    /// the fifth and grows, and allows one more attempt once it ends. Never shortens a
    /// longer throttle that a concurrent failure set, and does nothing once a success has
    /// reset the counter below this attempt.
    pub fn record_failure(&mut self, attempts: u32, now: u64) {
        if let Some(secs) = Self::throttle_secs(attempts)
            && self.attempts >= attempts
            && self.throttled_until < now + secs
        {
            self.throttled_until = now + secs;
            self.allowed = attempts + 1;
        }
    }

    /// How long the failure of attempt `attempts` throttles: nothing before the fifth,
    /// then 30 s, doubling with each further failure up to the window.
    pub fn throttle_secs(attempts: u32) -> Option<u64> {
        let extra = attempts.checked_sub(THROTTLE_AFTER_FAILURES)?;
        Some((THROTTLE_BASE_SECS << extra.min(10)).min(THROTTLE_WINDOW_SECS))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reserved_attempt_that_never_reports_stops_blocking_after_its_lease() {
        let mut throttle = LoginThrottle::default();
        for _ in 0..THROTTLE_AFTER_FAILURES {
            assert!(matches!(throttle.reserve(1_000), AttemptReservation::Granted { .. }));
        }
        // Four failures recorded, the fifth check crashed: nothing throttles, yet all are taken.
        for attempt in 1..THROTTLE_AFTER_FAILURES {
            throttle.record_failure(attempt, 1_000);
        }
        assert_eq!(throttle.reserve(1_010), AttemptReservation::Refused { retry_after_secs: 20 });
        assert_eq!(throttle.reserve(1_000 + ATTEMPT_LEASE_SECS), AttemptReservation::Granted { attempts: 6 });
    }

    #[test]
    fn a_failure_recorded_after_a_reset_changes_nothing() {
        let mut throttle = LoginThrottle::default();
        for _ in 0..THROTTLE_AFTER_FAILURES {
            throttle.reserve(1_000);
        }
        // A success reset the counter while the fifth guess was still being checked.
        let mut reset = LoginThrottle::default();
        reset.record_failure(THROTTLE_AFTER_FAILURES, 1_001);
        assert_eq!(reset, LoginThrottle::default());
        throttle.record_failure(THROTTLE_AFTER_FAILURES, 1_001);
        assert_eq!(throttle.retry_after(1_001), Some(THROTTLE_BASE_SECS));
    }
}
