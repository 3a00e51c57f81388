//! Login sessions (random tokens kept in memory, so a restart logs everyone out) and the login
//! rate limit. Pure logic over explicit instants, so that it is tested without waiting.

use std::collections::HashMap;
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

/// One logged-in technician.
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
    failures: HashMap<IpAddr, Vec<Instant>>,
    all_failures: Vec<Instant>,
}

/// A new random session token (256 bits, hex).
pub fn new_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
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

    /// Ends the session of `token`.
    pub fn remove(&mut self, token: &str) {
        self.by_token.remove(token);
    }

    /// Ends every session (after a password change).
    pub fn clear(&mut self) {
        self.by_token.clear();
    }

    fn expire(&mut self, now: Instant) {
        self.by_token
            .retain(|_, s| now.duration_since(s.last_used) <= IDLE_TIMEOUT && now.duration_since(s.created) <= MAX_AGE);
        let recent = |t: &Instant| now.duration_since(*t) < FAILURE_WINDOW;
        self.failures.retain(|_, v| {
            v.retain(recent);
            !v.is_empty()
        });
        self.all_failures.retain(recent);
    }

    /// How long `client` must wait before it may try to log in again (`None`: it may now).
    pub fn login_blocked(&mut self, client: IpAddr, now: Instant) -> Option<Duration> {
        self.expire(now);
        let wait = |list: &[Instant], limit: usize| {
            (list.len() >= limit).then(|| FAILURE_WINDOW.saturating_sub(now.duration_since(list[list.len() - limit])))
        };
        let client_wait = self.failures.get(&client).and_then(|v| wait(v, FAILURES_PER_CLIENT));
        client_wait.or_else(|| wait(&self.all_failures, FAILURES_PER_UNIT)).map(|d| d.max(Duration::from_secs(1)))
    }

    /// Counts a failed login from `client`.
    pub fn login_failed(&mut self, client: IpAddr, now: Instant) {
        self.failures.entry(client).or_default().push(now);
        self.all_failures.push(now);
    }

    /// Forgets `client`'s failures after it logged in.
    pub fn login_succeeded(&mut self, client: IpAddr) {
        self.failures.remove(&client);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_when_idle_and_at_max_age() {
        let t0 = Instant::now();
        let mut s = Sessions::default();
        s.create("a".into(), "tech", t0);
        assert_eq!(s.touch("a", t0 + IDLE_TIMEOUT / 2).unwrap().user, "tech");
        assert!(s.touch("b", t0).is_none());
        assert!(s.touch("a", t0 + IDLE_TIMEOUT / 2 + IDLE_TIMEOUT + Duration::from_secs(1)).is_none());
        s.create("c".into(), "tech", t0);
        let mut t = t0;
        while t < t0 + MAX_AGE {
            t += IDLE_TIMEOUT / 2;
            if t <= t0 + MAX_AGE {
                assert!(s.touch("c", t).is_some());
            }
        }
        assert!(s.touch("c", t0 + MAX_AGE + Duration::from_secs(1)).is_none());
        s.create("d".into(), "tech", t0);
        s.remove("d");
        assert!(s.touch("d", t0).is_none());
    }

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
        assert!(!s.failures.contains_key(&a));
    }

    #[test]
    fn tokens_are_random_and_long() {
        let (x, y) = (new_token().unwrap(), new_token().unwrap());
        assert_eq!(x.len(), 64);
        assert_ne!(x, y);
    }
}
