//! Registry changes as the other nodes of a cluster apply them.
//!
//! A node that changes the registry learns of it from its own call: it
//! bumps the authorization generations and broadcasts a [`RegistryEvent`].
//! Nodes that share the store (PostgreSQL) must learn of it too: the store
//! itself announces each change as a [`Change`], in the transaction that
//! makes it (`migrations/postgres/0002_registry_changes.sql`), and a node
//! applies one made elsewhere with [`Registry::apply_remote`] exactly as
//! the maker applied it (`store::postgres::notify` carries them). A node
//! that may have missed changes (its listening connection dropped, or the
//! store's version moved past what it heard) calls [`Registry::resync`]:
//! everything is treated as changed. Until it has confirmed that it heard
//! everything, recently, its [`Freshness`] says so: `/readyz` fails and no
//! new connection is authenticated.

use crate::generations::AuthorizationScope;
use crate::model::CertificateStatus;
use crate::{Registry, RegistryEvent};
use serde::{Deserialize, Serialize};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One registry change, as it travels between nodes (JSON).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    /// A certificate left or entered ACTIVE (its status), or was deleted
    /// (none).
    Certificate {
        certificate_id: String,
        status: Option<String>,
    },
    /// Authorizations in this scope may be stale.
    Authorization {
        scope: Scope,
    },
    Rules,
    Destinations,
}

/// An [`AuthorizationScope`] that owns its key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "key", rename_all = "snake_case")]
pub enum Scope {
    All,
    Certificate(String),
    Thing(String),
}

impl From<AuthorizationScope<'_>> for Scope {
    fn from(scope: AuthorizationScope<'_>) -> Self {
        match scope {
            AuthorizationScope::All => Scope::All,
            AuthorizationScope::Certificate(id) => Scope::Certificate(id.to_string()),
            AuthorizationScope::Thing(name) => Scope::Thing(name.to_string()),
        }
    }
}

impl Scope {
    fn borrowed(&self) -> AuthorizationScope<'_> {
        match self {
            Scope::All => AuthorizationScope::All,
            Scope::Certificate(id) => AuthorizationScope::Certificate(id),
            Scope::Thing(name) => AuthorizationScope::Thing(name),
        }
    }
}

impl Registry {
    /// Applies a change another node made, as that node applied it.
    pub fn apply_remote(&self, change: Change) {
        match change {
            Change::Certificate {
                certificate_id,
                status,
            } => {
                let status = status.as_deref().and_then(CertificateStatus::parse);
                self.publish(RegistryEvent::CertificateStatusChanged {
                    certificate_id,
                    status,
                });
            }
            Change::Authorization { scope } => {
                self.generations.bump(scope.borrowed());
                self.publish(RegistryEvent::AuthorizationChanged);
            }
            Change::Rules => self.publish(RegistryEvent::RulesChanged),
            Change::Destinations => self.publish(RegistryEvent::DestinationsChanged),
        }
    }

    /// Changes may have been missed: every authorization is stale, rules
    /// and destinations are read again, live certificates re-checked.
    pub fn resync(&self) {
        self.generations.bump(AuthorizationScope::All);
        self.publish(RegistryEvent::Resynced);
    }

    /// The tag this registry's own writes carry in a shared store's change
    /// notifications (none for a store of its own).
    pub fn origin(&self) -> Option<&str> {
        self.origin.as_deref()
    }

    /// Whether this node's view of a shared store is known to be current.
    pub fn freshness(&self) -> &Freshness {
        &self.freshness
    }
}

/// When this node last confirmed it had every change of a shared store,
/// and how long that may be ago. A registry of its own is always fresh.
#[derive(Debug, Default)]
pub struct Freshness {
    watched: Mutex<Option<Watched>>,
}

#[derive(Debug)]
struct Watched {
    confirmed: Instant,
    limit: Duration,
}

impl Freshness {
    /// From now on, a confirmation older than `limit` makes the registry
    /// stale (starting confirmed).
    pub fn watch(&self, limit: Duration) {
        *self.lock() = Some(Watched {
            confirmed: Instant::now(),
            limit,
        });
    }

    /// Everything the store holds has been heard or re-read, now.
    pub fn confirm(&self) {
        if let Some(watched) = self.lock().as_mut() {
            watched.confirmed = Instant::now();
        }
    }

    /// Ok while confirmed within the limit; else why not, for `/readyz`
    /// and refused connections.
    pub fn check(&self) -> Result<(), String> {
        match &*self.lock() {
            Some(watched) if watched.confirmed.elapsed() > watched.limit => Err(format!(
                "not confirmed up to date with the shared database for {} s (limit {} s)",
                watched.confirmed.elapsed().as_secs(),
                watched.limit.as_secs()
            )),
            _ => Ok(()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Watched>> {
        // Plain data: a panic elsewhere cannot leave it half-written.
        self.watched.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_read_back_from_their_json() {
        for change in [
            Change::Certificate {
                certificate_id: "abc".into(),
                status: Some("REVOKED".into()),
            },
            Change::Certificate {
                certificate_id: "abc".into(),
                status: None,
            },
            Change::Authorization { scope: Scope::All },
            Change::Authorization {
                scope: Scope::Thing("t\"1".into()),
            },
            Change::Rules,
            Change::Destinations,
        ] {
            let text = serde_json::to_string(&change).unwrap();
            assert_eq!(serde_json::from_str::<Change>(&text).unwrap(), change);
        }
        assert!(serde_json::from_str::<Change>("{\"kind\":\"nope\"}").is_err());
    }

    #[test]
    fn freshness_fails_past_its_limit_until_confirmed() {
        let freshness = Freshness::default();
        assert!(freshness.check().is_ok(), "unwatched: always fresh");
        freshness.watch(Duration::from_millis(20));
        assert!(freshness.check().is_ok());
        std::thread::sleep(Duration::from_millis(40));
        let why = freshness.check().unwrap_err();
        assert!(why.contains("not confirmed up to date"), "{why}");
        freshness.confirm();
        assert!(freshness.check().is_ok());
    }
}
