//! Which live authorizations a registry change may have made stale.
//!
//! Connections prepare their policies once and keep them until a change
//! could alter a decision. A change names its scope: everything (a policy's
//! default version, a thing group), one certificate (its attachments, its
//! status) or one thing (its attributes, type, groups, principals). Each
//! scope has a generation counter, bumped before the call that changed
//! anything returns, so a connection's very next action sees the change.
//!
//! Scoped counters live in a fixed table indexed by a hash of the scope:
//! memory does not grow with the fleet and nothing needs cleaning up. Two
//! scopes sharing a slot only cost a needless refresh, never a missed one.
//! Provisioning a thousand devices therefore leaves the other connections'
//! prepared policies alone, where one global counter made every connection
//! re-read its policies after every attachment.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

/// Scoped generation counters: 64 KiB, shared by all connections.
const SLOTS: usize = 8192;

/// What a change may affect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthorizationScope<'a> {
    /// Every connection: a policy's document, a thing group's policies or
    /// its place in the hierarchy.
    All,
    /// The connections that authenticated with this certificate (its id).
    Certificate(&'a str),
    /// The connections whose client id is this thing name.
    Thing(&'a str),
}

/// Where one connection's generation is read: its certificate's slot and
/// its client id's (as a thing name).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthorizationWatch {
    certificate: u32,
    thing: Option<u32>,
}

pub(crate) struct Generations {
    all: AtomicU64,
    slots: Box<[AtomicU64]>,
}

impl Default for Generations {
    fn default() -> Self {
        Self {
            all: AtomicU64::new(0),
            slots: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

fn slot(kind: u8, key: &str) -> u32 {
    let mut hasher = DefaultHasher::new();
    kind.hash(&mut hasher);
    key.hash(&mut hasher);
    (hasher.finish() % SLOTS as u64) as u32
}

const CERTIFICATE: u8 = b'c';
const THING: u8 = b't';

impl Generations {
    pub(crate) fn bump(&self, scope: AuthorizationScope<'_>) {
        let counter = match scope {
            AuthorizationScope::All => &self.all,
            AuthorizationScope::Certificate(id) => &self.slots[slot(CERTIFICATE, id) as usize],
            AuthorizationScope::Thing(name) => &self.slots[slot(THING, name) as usize],
        };
        counter.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn watch(
        &self,
        certificate_id: &str,
        client_id: Option<&str>,
    ) -> AuthorizationWatch {
        AuthorizationWatch {
            certificate: slot(CERTIFICATE, certificate_id),
            thing: client_id.map(|c| slot(THING, c)),
        }
    }

    /// Changes whenever a change in one of the watch's scopes (or in all) is made.
    pub(crate) fn generation(&self, watch: &AuthorizationWatch) -> u64 {
        let load = |slot: u32| self.slots[slot as usize].load(Ordering::Acquire);
        self.all
            .load(Ordering::Acquire)
            .wrapping_add(load(watch.certificate))
            .wrapping_add(watch.thing.map_or(0, load))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_reaches_its_scope_and_all_changes_reach_everyone() {
        let g = Generations::default();
        let a = g.watch("cert-a", Some("thing-a"));
        let b = g.watch("cert-b", Some("thing-b"));
        let anonymous = g.watch("cert-c", None);
        let generation = |w| g.generation(&w);
        let (a0, b0, c0) = (generation(a), generation(b), generation(anonymous));

        g.bump(AuthorizationScope::Certificate("cert-a"));
        assert_ne!(generation(a), a0);
        let a1 = generation(a);
        g.bump(AuthorizationScope::Thing("thing-a"));
        assert_ne!(generation(a), a1);
        let a2 = generation(a);
        // A certificate id and a thing name that are equal are still different scopes.
        g.bump(AuthorizationScope::Thing("cert-c"));
        assert_eq!(generation(anonymous), c0);

        g.bump(AuthorizationScope::All);
        assert_ne!(generation(a), a2);
        assert_ne!(generation(b), b0);
        assert_ne!(generation(anonymous), c0);
    }

    #[test]
    fn changes_elsewhere_rarely_touch_a_connection() {
        // 10,000 other certificates changing move a watch only through slot
        // collisions: about 10,000 / 8,192 times, never through a shared
        // global counter.
        let g = Generations::default();
        let w = g.watch("the-one", Some("the-thing"));
        let before = g.generation(&w);
        for i in 0..10_000 {
            g.bump(AuthorizationScope::Certificate(&format!("other-{i}")));
        }
        let moved = g.generation(&w) - before;
        assert!(moved < 20, "moved {moved} times");
    }
}
