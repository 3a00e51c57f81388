//! The logged-in sessions by token.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long sessions live and how many there may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    /// A session ends after this long without a request.
    pub idle_timeout: Duration,
    /// A session ends this long after the login whatever happens.
    pub max_age: Duration,
    /// At most this many sessions at once; the oldest goes first.
    pub max_sessions: usize,
}

impl SessionLimits {
    /// Whether `session` is still valid at `now`.
    fn allow(&self, session: &Session, now: Instant) -> bool {
        now.duration_since(session.last_used) <= self.idle_timeout
            && now.duration_since(session.created) <= self.max_age
    }
}

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

/// The sessions, by token.
#[derive(Debug)]
pub struct SessionTable {
    limits: SessionLimits,
    by_token: HashMap<String, Session>,
}

impl SessionTable {
    /// No session yet, under `limits`.
    pub fn new(limits: SessionLimits) -> SessionTable {
        SessionTable { limits, by_token: HashMap::new() }
    }

    /// Starts a session for `user` under `token`, ending expired ones and, when full, the
    /// oldest.
    pub fn create(&mut self, token: String, user: &str, now: Instant) {
        let limits = self.limits;
        self.by_token.retain(|_, s| limits.allow(s, now));
        if self.by_token.len() >= self.limits.max_sessions
            && let Some(oldest) = self.by_token.iter().min_by_key(|(_, s)| s.created).map(|(t, _)| t.clone())
        {
            self.by_token.remove(&oldest);
        }
        self.by_token.insert(token, Session { user: user.to_owned(), created: now, last_used: now });
    }

    /// The session of `token` if it is still valid, marking it used.
    pub fn touch(&mut self, token: &str, now: Instant) -> Option<Session> {
        let session = self.by_token.get(token)?;
        if !self.limits.allow(session, now) {
            self.by_token.remove(token);
            return None;
        }
        let session = self.by_token.get_mut(token)?;
        session.last_used = now;
        Some(session.clone())
    }

    /// Ends the session of `token`; its user, if there was one.
    pub fn remove(&mut self, token: &str) -> Option<String> {
        self.by_token.remove(token).map(|s| s.user)
    }

    /// Ends every session.
    pub fn clear(&mut self) {
        self.by_token.clear();
    }

    /// How many sessions are held (expired ones included until the next login).
    pub fn len(&self) -> usize {
        self.by_token.len()
    }

    /// Whether no session is held.
    pub fn is_empty(&self) -> bool {
        self.by_token.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: SessionLimits =
        SessionLimits { idle_timeout: Duration::from_secs(60), max_age: Duration::from_secs(600), max_sessions: 3 };

    #[test]
    fn sessions_expire_when_idle_at_max_age_and_on_logout() {
        let t0 = Instant::now();
        let mut s = SessionTable::new(LIMITS);
        s.create("a".into(), "ann", t0);
        let idle = LIMITS.idle_timeout;
        assert_eq!(s.touch("a", t0 + idle / 2).unwrap().user, "ann");
        assert!(s.touch("b", t0).is_none());
        assert!(s.touch("a", t0 + idle / 2 + idle + Duration::from_secs(1)).is_none());
        s.create("c".into(), "ann", t0);
        let mut t = t0;
        while t < t0 + LIMITS.max_age {
            t += idle / 2;
            if t <= t0 + LIMITS.max_age {
                assert!(s.touch("c", t).is_some(), "used every half idle timeout until its max age");
            }
        }
        assert!(s.touch("c", t0 + LIMITS.max_age + Duration::from_secs(1)).is_none());
        s.create("d".into(), "bob", t0);
        assert_eq!(s.remove("d").as_deref(), Some("bob"));
        assert!(s.touch("d", t0).is_none());
    }

    #[test]
    fn a_full_table_ends_the_oldest_session() {
        let t0 = Instant::now();
        let mut s = SessionTable::new(LIMITS);
        for (i, token) in ["a", "b", "c", "d"].into_iter().enumerate() {
            s.create(token.into(), "ann", t0 + Duration::from_secs(i as u64));
        }
        assert_eq!(s.len(), 3);
        assert!(s.touch("a", t0 + Duration::from_secs(4)).is_none(), "the oldest went");
        assert!(s.touch("d", t0 + Duration::from_secs(4)).is_some());
        s.clear();
        assert!(s.is_empty());
    }

    #[test]
    fn expired_sessions_are_dropped_at_the_next_login() {
        let t0 = Instant::now();
        let mut s = SessionTable::new(LIMITS);
        s.create("a".into(), "ann", t0);
        s.create("b".into(), "bob", t0 + LIMITS.idle_timeout * 2);
        assert_eq!(s.len(), 1);
    }
}
