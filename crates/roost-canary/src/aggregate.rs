//! From attempts to incidents without flooding the gateway: a source's first
//! attempt on a service is reported at once; its further attempts are
//! folded into one summary per window, with their count and the
//! credentials tried. Every attempt is counted in exactly one incident.
//!
//! Pure: time comes in as arguments, nothing is written here. The agent
//! persists the open windows ([`Aggregator::take_changes`]) in the same
//! transaction as the incidents, so a killed canary loses no count.

use crate::incident::{timestamp, Attempt, Credential, Incident, IncidentKind};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// The bounds of the aggregation.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub window: Duration,
    /// Sources followed one by one; further sources share one window per
    /// service.
    pub max_sources: usize,
    /// Distinct credentials a summary lists.
    pub max_credentials: usize,
}

/// Sources a shared window lists by address (the rest are counted).
const MAX_LISTED_SOURCES: usize = 50;

/// Which window an attempt belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    /// One source on one service.
    Source(&'static str, IpAddr),
    /// Every source past [`Limits::max_sources`], on one service.
    Overflow(&'static str),
}

impl Key {
    /// The key's text in the outbox's table of open windows.
    pub fn to_text(&self) -> String {
        match self {
            Key::Source(service, ip) => format!("{service}|{ip}"),
            Key::Overflow(service) => format!("{service}|*"),
        }
    }

    pub fn from_text(text: &str) -> Option<Self> {
        let (service, source) = text.split_once('|')?;
        let service = crate::services::ServiceKind::ALL
            .iter()
            .map(|k| k.name())
            .chain(std::iter::once(crate::outbox::FOLD_SERVICE))
            .find(|name| *name == service)?;
        if source == "*" {
            Some(Key::Overflow(service))
        } else {
            Some(Key::Source(service, source.parse().ok()?))
        }
    }

    fn service(&self) -> &'static str {
        match self {
            Key::Source(service, _) | Key::Overflow(service) => service,
        }
    }
}

/// The attempts folded into a window so far (persisted as JSON).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Folded {
    pub attempts: u64,
    pub first_seen: Option<String>,
    pub last_seen: Option<String>,
    pub client_address: String,
    pub server_port: u16,
    pub credentials: Vec<(String, Option<String>, Option<String>)>,
    pub credentials_not_listed: u64,
    /// For shared windows: the sources seen.
    pub sources: Vec<String>,
    pub sources_not_listed: u64,
    /// The details of the last attempt folded.
    pub last_details: Map<String, Value>,
}

impl Folded {
    fn add(&mut self, attempt: &Attempt, limits: &Limits, list_source: bool) {
        let seen = timestamp(attempt.at);
        if self.attempts == 0 {
            self.first_seen = Some(seen.clone());
            self.client_address = attempt.source.ip().to_string();
        }
        self.attempts += 1;
        self.last_seen = Some(seen);
        self.server_port = attempt.server_port;
        self.last_details = attempt.details.clone();
        if let Some(Credential {
            username,
            password,
            public_key,
        }) = &attempt.credential
        {
            let entry = (username.clone(), password.clone(), public_key.clone());
            if !self.credentials.contains(&entry) {
                if self.credentials.len() < limits.max_credentials {
                    self.credentials.push(entry);
                } else {
                    self.credentials_not_listed += 1;
                }
            }
        }
        if list_source {
            let ip = attempt.source.ip().to_string();
            if !self.sources.contains(&ip) {
                if self.sources.len() < MAX_LISTED_SOURCES {
                    self.sources.push(ip);
                } else {
                    self.sources_not_listed += 1;
                }
            }
        }
    }

    /// The summary incident of these attempts.
    pub fn summary(&self, service: &'static str, at: OffsetDateTime) -> Incident {
        let mut details = Map::new();
        details.insert("firstSeen".into(), self.first_seen.clone().into());
        details.insert("lastSeen".into(), self.last_seen.clone().into());
        let credentials: Vec<Value> = self
            .credentials
            .iter()
            .map(|(u, p, k)| {
                Credential {
                    username: u.clone(),
                    password: p.clone(),
                    public_key: k.clone(),
                }
                .to_json()
            })
            .collect();
        if !credentials.is_empty() || self.credentials_not_listed > 0 {
            details.insert("credentials".into(), Value::Array(credentials));
            details.insert(
                "credentialsNotListed".into(),
                self.credentials_not_listed.into(),
            );
        }
        if !self.sources.is_empty() {
            details.insert(
                "sources".into(),
                Value::Array(self.sources.iter().cloned().map(Value::from).collect()),
            );
            details.insert("sourcesNotListed".into(), self.sources_not_listed.into());
        }
        details.insert(
            "lastAttempt".into(),
            Value::Object(self.last_details.clone()),
        );
        Incident {
            id: uuid::Uuid::new_v4(),
            kind: IncidentKind::Summary,
            service,
            client_address: self.client_address.clone(),
            server_port: self.server_port,
            at,
            attempts: self.attempts,
            details,
        }
    }
}

struct Window {
    started: Instant,
    folded: Folded,
}

/// Changes to the open windows since the last [`Aggregator::take_changes`]:
/// what the outbox must write.
#[derive(Debug, Default, PartialEq)]
pub struct Changes {
    pub upserts: Vec<(String, Folded)>,
    pub removes: Vec<String>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.upserts.is_empty() && self.removes.is_empty()
    }
}

/// The aggregation state.
pub struct Aggregator {
    limits: Limits,
    windows: HashMap<Key, Window>,
    sources: usize,
    dirty: HashSet<Key>,
    removed: HashSet<Key>,
}

impl Aggregator {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            windows: HashMap::new(),
            sources: 0,
            dirty: HashSet::new(),
            removed: HashSet::new(),
        }
    }

    /// Takes back windows a previous run left open (from the outbox); they
    /// are summarised at the end of a window starting `now`.
    pub fn restore(&mut self, windows: Vec<(Key, Folded)>, now: Instant) {
        for (key, folded) in windows {
            if matches!(key, Key::Source(..)) {
                self.sources += 1;
            }
            self.windows.insert(
                key,
                Window {
                    started: now,
                    folded,
                },
            );
        }
    }

    /// Takes one attempt; returns the incident to report at once, if any.
    pub fn observe(&mut self, attempt: &Attempt, now: Instant) -> Option<Incident> {
        let key = Key::Source(attempt.service, attempt.source.ip());
        if let Some(window) = self.windows.get_mut(&key) {
            window.folded.add(attempt, &self.limits, false);
            self.mark(key);
            return None;
        }
        if self.sources < self.limits.max_sources {
            self.sources += 1;
            self.windows.insert(
                key,
                Window {
                    started: now,
                    folded: Folded::default(),
                },
            );
            return Some(Incident::of_attempt(attempt));
        }
        let key = Key::Overflow(attempt.service);
        let limits = self.limits;
        let window = self.windows.entry(key.clone()).or_insert(Window {
            started: now,
            folded: Folded::default(),
        });
        window.folded.add(attempt, &limits, true);
        self.mark(key);
        None
    }

    /// Closes the windows that have run their length: a summary for each
    /// that folded attempts; a window that stayed quiet is forgotten, so
    /// the source's next attempt is reported at once again.
    pub fn tick(&mut self, now: Instant, wall: OffsetDateTime) -> Vec<Incident> {
        let window = self.limits.window;
        let mut due: Vec<Key> = self
            .windows
            .iter()
            .filter(|(_, w)| now.saturating_duration_since(w.started) >= window)
            .map(|(k, _)| k.clone())
            .collect();
        due.sort();
        let mut incidents = Vec::new();
        for key in due {
            let Some(w) = self.windows.get_mut(&key) else {
                continue;
            };
            if w.folded.attempts > 0 {
                incidents.push(w.folded.summary(key.service(), wall));
                w.folded = Folded::default();
                w.started = now;
                self.mark(key);
            } else {
                self.windows.remove(&key);
                if matches!(key, Key::Source(..)) {
                    self.sources -= 1;
                }
                self.dirty.remove(&key);
                self.removed.insert(key);
            }
        }
        incidents
    }

    /// Summaries of every window with folded attempts, at shutdown.
    pub fn close_all(&mut self, wall: OffsetDateTime) -> Vec<Incident> {
        let mut keys: Vec<Key> = self.windows.keys().cloned().collect();
        keys.sort();
        let mut incidents = Vec::new();
        for key in keys {
            if let Some(w) = self.windows.remove(&key) {
                if w.folded.attempts > 0 {
                    incidents.push(w.folded.summary(key.service(), wall));
                }
                self.dirty.remove(&key);
                self.removed.insert(key);
            }
        }
        self.sources = 0;
        incidents
    }

    /// What changed in the open windows since the last call.
    pub fn take_changes(&mut self) -> Changes {
        let mut upserts: Vec<(String, Folded)> = self
            .dirty
            .drain()
            .filter_map(|k| {
                let w = self.windows.get(&k)?;
                Some((k.to_text(), w.folded.clone()))
            })
            .collect();
        upserts.sort_by(|a, b| a.0.cmp(&b.0));
        let mut removes: Vec<String> = self.removed.drain().map(|k| k.to_text()).collect();
        removes.sort();
        Changes { upserts, removes }
    }

    /// Takes back changes that could not be written, for the next
    /// [`Aggregator::take_changes`].
    pub fn retry(&mut self, changes: Changes) {
        for (text, _) in changes.upserts {
            if let Some(key) = Key::from_text(&text) {
                if self.windows.contains_key(&key) && !self.removed.contains(&key) {
                    self.dirty.insert(key);
                }
            }
        }
        for text in changes.removes {
            if let Some(key) = Key::from_text(&text) {
                if !self.windows.contains_key(&key) {
                    self.removed.insert(key);
                }
            }
        }
    }

    /// Windows open now (sources followed and shared windows).
    pub fn open_windows(&self) -> usize {
        self.windows.len()
    }

    fn mark(&mut self, key: Key) {
        self.removed.remove(&key);
        self.dirty.insert(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::SocketAddr;

    fn limits() -> Limits {
        Limits {
            window: Duration::from_secs(10),
            max_sources: 4,
            max_credentials: 3,
        }
    }

    fn attempt(service: &'static str, ip: u8, user: &str) -> Attempt {
        let source: SocketAddr = format!("10.0.0.{ip}:4000").parse().unwrap();
        Attempt::new(service, source, 22).credential(Credential::password(user, "pw"))
    }

    fn counted(incidents: &[Incident]) -> u64 {
        incidents.iter().map(|i| i.attempts).sum()
    }

    #[test]
    fn the_first_attempt_is_reported_at_once_then_one_summary_per_window() {
        let t0 = Instant::now();
        let wall = OffsetDateTime::now_utc();
        let mut agg = Aggregator::new(limits());
        let first = agg.observe(&attempt("ssh", 1, "root"), t0).unwrap();
        assert_eq!(first.kind, IncidentKind::Attempt);
        for user in ["admin", "pi", "root", "ubuntu", "oracle"] {
            assert!(agg.observe(&attempt("ssh", 1, user), t0).is_none());
        }
        assert!(agg.tick(t0 + Duration::from_secs(9), wall).is_empty());
        let summaries = agg.tick(t0 + Duration::from_secs(10), wall);
        assert_eq!(summaries.len(), 1);
        let json = summaries[0].to_json("c");
        assert_eq!(json["kind"], "summary");
        assert_eq!(json["attempts"], 5);
        assert_eq!(json["message"]["clientAddress"], "10.0.0.1");
        // Distinct credentials, at most max_credentials listed, the rest counted.
        assert_eq!(json["details"]["credentials"].as_array().unwrap().len(), 3);
        assert_eq!(json["details"]["credentialsNotListed"], 2);
        // A quiet window forgets the source: its next attempt is reported at once.
        assert!(agg.tick(t0 + Duration::from_secs(20), wall).is_empty());
        assert!(agg
            .observe(&attempt("ssh", 1, "x"), t0 + Duration::from_secs(21))
            .is_some());
    }

    #[test]
    fn sources_past_the_limit_share_a_window_per_service() {
        let t0 = Instant::now();
        let mut agg = Aggregator::new(limits());
        for ip in 1..=4 {
            assert!(agg.observe(&attempt("http", ip, "a"), t0).is_some());
        }
        for ip in 5..=9 {
            assert!(agg.observe(&attempt("http", ip, "a"), t0).is_none());
        }
        let out = agg.tick(t0 + Duration::from_secs(10), OffsetDateTime::now_utc());
        assert_eq!(out.len(), 1);
        let json = out[0].to_json("c");
        assert_eq!(json["attempts"], 5);
        assert_eq!(json["details"]["sources"].as_array().unwrap().len(), 5);
    }

    #[test]
    fn changes_follow_the_open_windows_and_restore_brings_them_back() {
        let t0 = Instant::now();
        let mut agg = Aggregator::new(limits());
        agg.observe(&attempt("ssh", 1, "a"), t0);
        // The first attempt opens a window with nothing folded: nothing to keep.
        assert!(agg.take_changes().is_empty());
        agg.observe(&attempt("ssh", 1, "b"), t0);
        agg.observe(&attempt("ssh", 1, "c"), t0);
        let changes = agg.take_changes();
        assert_eq!(changes.upserts.len(), 1);
        assert_eq!(changes.upserts[0].0, "ssh|10.0.0.1");
        assert_eq!(changes.upserts[0].1.attempts, 2);

        let mut again = Aggregator::new(limits());
        let key = Key::from_text(&changes.upserts[0].0).unwrap();
        again.restore(vec![(key, changes.upserts[0].1.clone())], t0);
        let out = again.tick(t0 + Duration::from_secs(10), OffsetDateTime::now_utc());
        assert_eq!(counted(&out), 2);

        // A summarised window is written empty; a quiet one is removed.
        agg.tick(t0 + Duration::from_secs(10), OffsetDateTime::now_utc());
        let changes = agg.take_changes();
        assert_eq!(changes.upserts[0].1.attempts, 0);
        agg.tick(t0 + Duration::from_secs(20), OffsetDateTime::now_utc());
        assert_eq!(agg.take_changes().removes, vec!["ssh|10.0.0.1".to_string()]);
    }

    proptest! {
        /// Every attempt is counted in exactly one incident, whatever the
        /// sources, services, timing and limits.
        #[test]
        fn every_attempt_is_counted_once(
            events in proptest::collection::vec((0u8..12, 0usize..3, 0u64..40, 0u8..6), 0..400),
            max_sources in 1usize..6,
            window in 1u64..15,
        ) {
            let services = ["ssh", "http", "redis"];
            let t0 = Instant::now();
            let wall = OffsetDateTime::now_utc();
            let mut agg = Aggregator::new(Limits {
                window: Duration::from_secs(window),
                max_sources,
                max_credentials: 2,
            });
            let mut incidents = Vec::new();
            let mut now = 0u64;
            for (ip, service, advance, user) in &events {
                now += advance % 4;
                let at = t0 + Duration::from_secs(now);
                incidents.extend(agg.tick(at, wall));
                let a = attempt(services[*service], *ip, &format!("u{user}"));
                incidents.extend(agg.observe(&a, at));
                prop_assert!(agg.open_windows() <= max_sources + services.len());
            }
            incidents.extend(agg.close_all(wall));
            prop_assert_eq!(counted(&incidents), events.len() as u64);
        }
    }
}
