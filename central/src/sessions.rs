//! Browser sessions (random tokens kept in memory, so a restart logs everyone out) and the
//! login rate limit, per client address and per user name. Pure logic over explicit instants,
//! tested without waiting. The mechanics are the `web-sessions` crate's, shared with the unit's
//! page; central's limits count per user name as well as per address.

use std::net::IpAddr;
use std::time::{Duration, Instant};

/// A session ends after this long without a request.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60 * 60);
/// A session ends this long after the login whatever happens.
pub const MAX_AGE: Duration = Duration::from_secs(12 * 3600);
/// Failed logins a client address may make per [`FAILURE_WINDOW`].
pub const FAILURES_PER_CLIENT: usize = 20;
/// Failed logins a user name may see per [`FAILURE_WINDOW`] (from any address).
pub const FAILURES_PER_USER: usize = 5;
/// The window the failure limits count over.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// At most this many sessions at once; the oldest goes first.
const MAX_SESSIONS: usize = 10_000;
/// At most this many user names are tracked for failures (guessed names must not fill memory).
const MAX_TRACKED_NAMES: usize = 10_000;

pub use web_sessions::Session;
use web_sessions::{FailureLimit, SessionLimits, SessionTable};

/// The sessions and the record of failed logins.
#[derive(Debug)]
pub struct Sessions {
    table: SessionTable,
    client_failures: FailureLimit<IpAddr>,
    user_failures: FailureLimit<String>,
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions {
            table: SessionTable::new(SessionLimits {
                idle_timeout: IDLE_TIMEOUT,
                max_age: MAX_AGE,
                max_sessions: MAX_SESSIONS,
            }),
            client_failures: FailureLimit::new(FAILURES_PER_CLIENT, FAILURE_WINDOW, usize::MAX),
            user_failures: FailureLimit::new(FAILURES_PER_USER, FAILURE_WINDOW, MAX_TRACKED_NAMES),
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

    /// Ends the session of `token`; its user, if it was valid.
    pub fn remove(&mut self, token: &str) -> Option<String> {
        self.table.remove(token)
    }

    /// How long a login as `user` from `client` must wait (`None`: it may try now).
    pub fn login_blocked(&mut self, client: IpAddr, user: &str, now: Instant) -> Option<Duration> {
        self.client_failures.expire(now);
        self.user_failures.expire(now);
        let by_user = self.user_failures.blocked(&user.to_owned(), now);
        self.client_failures.blocked(&client, now).max(by_user)
    }

    /// Counts a failed login as `user` from `client`.
    pub fn login_failed(&mut self, client: IpAddr, user: &str, now: Instant) {
        self.client_failures.failed(&client, now);
        self.user_failures.failed(&user.to_owned(), now);
    }

    /// Forgets the failures of `client` and `user` after a successful login.
    pub fn login_succeeded(&mut self, client: IpAddr, user: &str) {
        self.client_failures.forget(&client);
        self.user_failures.forget(&user.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HERE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    const THERE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn failures_block_the_user_name_from_anywhere_and_the_client_for_any_name() {
        let t0 = Instant::now();
        let mut s = Sessions::default();
        for i in 0..FAILURES_PER_USER {
            assert_eq!(s.login_blocked(HERE, "ann", t0), None, "attempt {i}");
            s.login_failed(HERE, "ann", t0);
        }
        assert_eq!(s.login_blocked(HERE, "ann", t0), Some(FAILURE_WINDOW));
        assert!(s.login_blocked(THERE, "ann", t0).is_some(), "the name is blocked from anywhere");
        assert_eq!(s.login_blocked(HERE, "bob", t0), None, "other names may still log in");
        assert_eq!(s.login_blocked(HERE, "ann", t0 + FAILURE_WINDOW), None, "the block ends");
        for i in 0..FAILURES_PER_CLIENT {
            s.login_failed(THERE, &format!("guess-{i}"), t0);
        }
        assert!(s.login_blocked(THERE, "carl", t0 + Duration::from_secs(30)).is_some());
        assert_eq!(s.login_blocked(HERE, "carl", t0), None);
        s.login_succeeded(THERE, "carl");
        assert_eq!(s.login_blocked(THERE, "carl", t0), None);
    }
}
