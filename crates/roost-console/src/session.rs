//! Console sessions: who signed in (an access key id), their CSRF token,
//! and when they last did something. Bounded; the least recently used
//! session makes room for a new one (counted), and an idle one expires.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Sessions kept at once.
pub const MAX_SESSIONS: usize = 1024;

/// How long a session may stay unused.
pub const IDLE_LIMIT: Duration = Duration::from_secs(3600);

/// A signed-in operator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub access_key_id: String,
    /// Every form of the session carries it; a POST without it is refused.
    pub csrf: String,
}

struct Entry {
    session: Session,
    last_used: Instant,
}

/// The sessions of one server, by their cookie's token.
#[derive(Default)]
pub struct Sessions {
    entries: Mutex<HashMap<String, Entry>>,
    /// Sessions dropped to make room for new ones.
    pub evicted: AtomicU64,
}

/// A fresh unguessable token: 244 random bits, hex.
pub fn token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Whether two secrets are equal, in time that does not depend on where
/// they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Sessions {
    /// Opens a session for `access_key_id`; returns its cookie token.
    pub fn open(&self, access_key_id: &str, now: Instant) -> String {
        let token = token();
        let mut entries = self.lock();
        entries.retain(|_, e| now.duration_since(e.last_used) < IDLE_LIMIT);
        if entries.len() >= MAX_SESSIONS {
            if let Some(oldest) = entries
                .iter()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(t, _)| t.clone())
            {
                entries.remove(&oldest);
                self.evicted.fetch_add(1, Ordering::Relaxed);
            }
        }
        entries.insert(
            token.clone(),
            Entry {
                session: Session {
                    access_key_id: access_key_id.to_string(),
                    csrf: self::token(),
                },
                last_used: now,
            },
        );
        token
    }

    /// The session of a cookie's token, if it is open and not idle for too
    /// long (using it keeps it open).
    pub fn get(&self, token: &str, now: Instant) -> Option<Session> {
        let mut entries = self.lock();
        let entry = entries.get_mut(token)?;
        if now.duration_since(entry.last_used) >= IDLE_LIMIT {
            entries.remove(token);
            return None;
        }
        entry.last_used = now;
        Some(entry.session.clone())
    }

    pub fn close(&self, token: &str) {
        self.lock().remove(token);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // Plain data: a panic elsewhere cannot leave it half-written.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_lives_while_used_and_ends_when_closed_or_idle() {
        let sessions = Sessions::default();
        let now = Instant::now();
        let token = sessions.open("AKIAEXAMPLE", now);
        let session = sessions.get(&token, now).unwrap();
        assert_eq!(session.access_key_id, "AKIAEXAMPLE");
        assert_eq!(session.csrf.len(), 64);
        assert_ne!(session.csrf, token);
        assert!(sessions.get("not-a-token", now).is_none());
        // Used within the limit: kept, and the limit counts from then.
        let later = now + IDLE_LIMIT - Duration::from_secs(1);
        assert!(sessions.get(&token, later).is_some());
        assert!(
            sessions.get(&token, later + IDLE_LIMIT).is_none(),
            "idle too long"
        );
        let other = sessions.open("AKIAEXAMPLE", now);
        sessions.close(&other);
        assert!(sessions.get(&other, now).is_none());
    }

    #[test]
    fn the_table_is_bounded_and_drops_the_least_recently_used() {
        let sessions = Sessions::default();
        let start = Instant::now();
        let first = sessions.open("k", start);
        let second = sessions.open("k", start + Duration::from_millis(1));
        for i in 2..MAX_SESSIONS as u64 {
            sessions.open("k", start + Duration::from_millis(i));
        }
        // The first is used again: the second is now the oldest.
        let now = start + Duration::from_secs(1);
        assert!(sessions.get(&first, now).is_some());
        sessions.open("k", now);
        assert_eq!(sessions.evicted.load(Ordering::Relaxed), 1);
        assert!(sessions.get(&second, now).is_none());
        assert!(sessions.get(&first, now).is_some());
        assert_eq!(sessions.lock().len(), MAX_SESSIONS);
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "ab"));
        assert!(!same_secret("", "a"));
    }
}
