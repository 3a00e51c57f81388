//! Browser sessions (random tokens kept in memory, so a restart logs everyone out) and the
//! login rate limit, per client address and per user name. Pure logic over explicit instants,
//! tested without waiting.

use std::collections::HashMap;
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

/// One logged-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    /// The user name.
    pub user: String,
    /// When it was created.
    pub created: Instant,
    /// When it was last used.
    pub last_used: Instant,
}

/// The sessions and the record of failed logins.
#[derive(Debug, Default)]
pub struct Sessions {
    by_token: HashMap<String, Session>,
    client_failures: HashMap<IpAddr, Vec<Instant>>,
    user_failures: HashMap<String, Vec<Instant>>,
}

impl Sessions {
    /// Starts a session for `user` under `token`.
    pub fn create(&mut self, token: String, user: &str, now: Instant) {
        self.expire(now);
        if self.by_token.len() >= MAX_SESSIONS
            && let Some(oldest) = self.by_token.iter().min_by_key(|(_, s)| s.created).map(|(t, _)| t.clone())
        {
            self.by_token.remove(&oldest);
        }
        self.by_token.insert(token, Session { user: user.to_owned(), created: now, last_used: now });
    }

    /// The session of `token` if it is still valid, marking it used.
    pub fn touch(&mut self, token: &str, now: Instant) -> Option<Session> {
        let session = self.by_token.get_mut(token)?;
        if now.duration_since(session.last_used) > IDLE_TIMEOUT || now.duration_since(session.created) > MAX_AGE {
            self.by_token.remove(token);
            return None;
        }
        session.last_used = now;
        Some(session.clone())
    }

    /// Ends the session of `token`; its user, if it was valid.
    pub fn remove(&mut self, token: &str) -> Option<String> {
        self.by_token.remove(token).map(|s| s.user)
    }

    fn expire(&mut self, now: Instant) {
        self.by_token
            .retain(|_, s| now.duration_since(s.last_used) <= IDLE_TIMEOUT && now.duration_since(s.created) <= MAX_AGE);
        let recent = |t: &Instant| now.duration_since(*t) < FAILURE_WINDOW;
        self.client_failures.retain(|_, v| {
            v.retain(recent);
            !v.is_empty()
        });
        self.user_failures.retain(|_, v| {
            v.retain(recent);
            !v.is_empty()
        });
    }

    /// How long a login as `user` from `client` must wait (`None`: it may try now).
    pub fn login_blocked(&mut self, client: IpAddr, user: &str, now: Instant) -> Option<Duration> {
        self.expire(now);
        let wait = |list: &[Instant], limit: usize| {
            (list.len() >= limit).then(|| FAILURE_WINDOW.saturating_sub(now.duration_since(list[list.len() - limit])))
        };
        let by_client = self.client_failures.get(&client).and_then(|v| wait(v, FAILURES_PER_CLIENT));
        let by_user = self.user_failures.get(user).and_then(|v| wait(v, FAILURES_PER_USER));
        by_client.max(by_user).map(|d| d.max(Duration::from_secs(1)))
    }

    /// Counts a failed login as `user` from `client`.
    pub fn login_failed(&mut self, client: IpAddr, user: &str, now: Instant) {
        self.client_failures.entry(client).or_default().push(now);
        if self.user_failures.len() < MAX_TRACKED_NAMES || self.user_failures.contains_key(user) {
            self.user_failures.entry(user.to_owned()).or_default().push(now);
        }
    }

    /// Forgets the failures of `client` and `user` after a successful login.
    pub fn login_succeeded(&mut self, client: IpAddr, user: &str) {
        self.client_failures.remove(&client);
        self.user_failures.remove(user);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HERE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    const THERE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn sessions_expire_when_idle_at_max_age_and_on_logout() {
        let t0 = Instant::now();
        let mut s = Sessions::default();
        s.create("a".into(), "ann", t0);
        assert_eq!(s.touch("a", t0 + IDLE_TIMEOUT / 2).unwrap().user, "ann");
        assert!(s.touch("b", t0).is_none());
        assert!(s.touch("a", t0 + IDLE_TIMEOUT / 2 + IDLE_TIMEOUT + Duration::from_secs(1)).is_none());
        s.create("c".into(), "ann", t0);
        let mut t = t0;
        while t < t0 + MAX_AGE {
            t += IDLE_TIMEOUT / 2;
            if t <= t0 + MAX_AGE {
                assert!(s.touch("c", t).is_some());
            }
        }
        assert!(s.touch("c", t0 + MAX_AGE + Duration::from_secs(1)).is_none());
        s.create("d".into(), "bob", t0);
        assert_eq!(s.remove("d").as_deref(), Some("bob"));
        assert!(s.touch("d", t0).is_none());
    }

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
