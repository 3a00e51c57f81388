//! Login sessions (random tokens kept in memory, so a restart logs everyone out) and the login
//! rate limit. Pure logic over explicit instants, so that it is tested without waiting. The
//! mechanics are the `web-sessions` crate's, shared with central's page; the unit limits failures
//! per address and for the whole unit.

use std::net::IpAddr;
use std::time::{Duration, Instant};

/// A session ends after this long without a request.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// A session ends this long after the login whatever happens.
pub const MAX_AGE: Duration = Duration::from_secs(12 * 3600);
/// Failed logins a client address may make per [`FAILURE_WINDOW`].
pub const FAILURES_PER_CLIENT: usize = 5;
/// Failed logins the whole unit accepts per [`FAILURE_WINDOW`] (against many addresses).
pub const FAILURES_PER_UNIT: usize = 30;
/// The window the failure limits count over.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// At most this many sessions at once; the oldest goes first.
const MAX_SESSIONS: usize = 32;

use web_sessions::{FailureLimit, SessionLimits, SessionTable};
pub use web_sessions::{Session, new_token};

/// The sessions and the record of failed logins.
#[derive(Debug)]
pub struct Sessions {
    table: SessionTable,
    failures: FailureLimit<IpAddr>,
    all_failures: FailureLimit<()>,
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions {
            table: SessionTable::new(SessionLimits {
                idle_timeout: IDLE_TIMEOUT,
                max_age: MAX_AGE,
                max_sessions: MAX_SESSIONS,
            }),
            failures: FailureLimit::new(FAILURES_PER_CLIENT, FAILURE_WINDOW, usize::MAX),
            all_failures: FailureLimit::new(FAILURES_PER_UNIT, FAILURE_WINDOW, 1),
        }
    }
}

impl Sessions {
    /// Starts a session for `user` under `token`.
    pub fn create(&mut self, token: String, user: &str, now: Instant) {
        self.table.create(token, user, now);
    }

    /// The session of `token` if it is still valid, marking it used.
    pub fn touch(&mut self, token: &str, now: Instant) -> Option<Session> {
        self.table.touch(token, now)
    }

    /// Ends the session of `token`.
    pub fn remove(&mut self, token: &str) {
        self.table.remove(token);
    }

    /// Ends every session (after a password change).
    pub fn clear(&mut self) {
        self.table.clear();
    }

    /// How long `client` must wait before it may try to log in again (`None`: it may now).
    pub fn login_blocked(&mut self, client: IpAddr, now: Instant) -> Option<Duration> {
        self.failures.expire(now);
        self.all_failures.expire(now);
        self.failures.blocked(&client, now).max(self.all_failures.blocked(&(), now))
    }

    /// Counts a failed login from `client`.
    pub fn login_failed(&mut self, client: IpAddr, now: Instant) {
        self.failures.failed(&client, now);
        self.all_failures.failed(&(), now);
    }

    /// Forgets `client`'s failures after it logged in.
    pub fn login_succeeded(&mut self, client: IpAddr) {
        self.failures.forget(&client);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_logins_are_limited_per_client_and_per_unit() {
        let t0 = Instant::now();
        let mut s = Sessions::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for i in 0..FAILURES_PER_CLIENT {
            assert_eq!(s.login_blocked(a, t0), None, "attempt {i}");
            s.login_failed(a, t0);
        }
        let wait = s.login_blocked(a, t0 + Duration::from_secs(10)).unwrap();
        assert_eq!(wait, FAILURE_WINDOW - Duration::from_secs(10));
        assert_eq!(s.login_blocked(b, t0), None, "another client is not blocked");
        assert_eq!(s.login_blocked(a, t0 + FAILURE_WINDOW), None, "the window passed");
        // Many addresses together hit the unit's limit.
        let t1 = t0 + FAILURE_WINDOW * 2;
        for i in 0..FAILURES_PER_UNIT {
            let ip = IpAddr::from([10, 1, (i / 256) as u8, (i % 256) as u8]);
            assert_eq!(s.login_blocked(ip, t1), None);
            s.login_failed(ip, t1);
        }
        assert!(s.login_blocked(IpAddr::from([10, 2, 0, 1]), t1).is_some());
        // A success forgets the client's own failures.
        let t2 = t1 + FAILURE_WINDOW;
        s.login_failed(a, t2);
        s.login_succeeded(a);
        assert!(!s.failures.tracks(&a));
    }
}
