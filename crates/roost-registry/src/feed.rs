//! Registry changes as the other nodes of a cluster apply them.
//!
//! A node that changes the registry learns of it from its own call: it
//! bumps the authorization generations and broadcasts a [`RegistryEvent`].
//! Nodes that share the store (PostgreSQL) must learn of it too: every
//! local change is also a [`Change`] on the feed ([`Registry::feed_changes`]),
//! which the store's transport carries (`store::postgres::notify`), and a
//! change from elsewhere is applied with [`Registry::apply_remote`] exactly
//! as the local one was, but not fed again. A node that may have missed
//! changes (its transport reconnected) calls [`Registry::resync`]:
//! everything is treated as changed.

use crate::generations::AuthorizationScope;
use crate::model::CertificateStatus;
use crate::{Registry, RegistryEvent};
use serde::{Deserialize, Serialize};
use std::sync::atomic::Ordering;
use tokio::sync::mpsc;

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

impl Change {
    /// The change an event stands for (authorization events carry their
    /// scope separately).
    pub(crate) fn of_event(event: &RegistryEvent) -> Option<Change> {
        match event {
            RegistryEvent::CertificateStatusChanged {
                certificate_id,
                status,
            } => Some(Change::Certificate {
                certificate_id: certificate_id.clone(),
                status: status.map(|s| s.as_str().to_string()),
            }),
            RegistryEvent::RulesChanged => Some(Change::Rules),
            RegistryEvent::DestinationsChanged => Some(Change::Destinations),
            RegistryEvent::AuthorizationChanged | RegistryEvent::Resynced => None,
        }
    }
}

/// How many changes may wait for the transport; past it they are dropped
/// and counted, and the other nodes resync only when their transport does.
pub const FEED_CAPACITY: usize = 4096;

impl Registry {
    /// Starts feeding this registry's changes to the returned receiver (a
    /// cluster node's transport). Only the first call feeds.
    pub fn feed_changes(&self) -> Option<mpsc::Receiver<Change>> {
        let (sender, receiver) = mpsc::channel(FEED_CAPACITY);
        self.feed.set(sender).ok().map(|()| receiver)
    }

    /// Changes dropped because the feed was full.
    pub fn feed_dropped(&self) -> u64 {
        self.feed_dropped.load(Ordering::Relaxed)
    }

    pub(crate) fn feed(&self, change: Change) {
        if let Some(feed) = self.feed.get() {
            // Closed: the node is stopping, and its transport with it.
            if let Err(mpsc::error::TrySendError::Full(_)) = feed.try_send(change) {
                self.feed_dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    "a registry change was not fed to the other nodes: the feed was full"
                );
            }
        }
    }

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
}
