//! The subscription index: every live subscription, arranged for routing.
//!
//! For: answering "who gets this PUBLISH" on the broker's hot path, in time that
//! depends on the topic's depth and on how many subscriptions match, not on how
//! many exist. Filters are stored level by level in a trie whose nodes have
//! separate children for an exact level and for `+`, and separate buckets for
//! filters that end at the node and filters that end in `#` below it. Matching a
//! topic walks at most two children per level (the exact one and `+`).
//! Never: allocate while matching (short of very deep topics), recurse (a general-
//! limits filter may have 30,000 levels, and a recursion that deep would
//! overflow a task's stack), or hold a lock: it is plain data, and the broker puts
//! it behind whatever lock suits it. Matching takes `&self`, so readers can route
//! concurrently.
//!
//! Nodes live in one arena (`Vec`) and refer to each other by index, so neither
//! dropping the index nor pruning a branch recurses either. A node is pruned as
//! soon as nothing hangs from it: after any sequence of inserts and removes the
//! trie holds exactly the nodes the remaining filters need.
//!
//! Shared subscriptions (`$share/<group>/<filter>`) are kept per (group, filter)
//! with their members sorted by subscriber key. Each match picks the next member
//! round-robin from an `AtomicUsize` per group: interior mutability that keeps
//! routing on `&self`. The order is deterministic given the order of calls; with
//! concurrent routers it is fair but interleaved.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

/// The index's maps hash with foldhash (randomly seeded per map, as std's
/// SipHash is, but several times cheaper on short keys): every routed
/// message walks them once per topic level.
type Map<K, V> = HashMap<K, V, foldhash::quality::RandomState>;
type Set<T> = HashSet<T, foldhash::quality::RandomState>;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::matching::MatchMode;
use crate::validate::{is_topic_name_syntax, parse_filter};

type NodeId = usize;

const ROOT: NodeId = 0;

/// Frames kept on the stack while matching before spilling to the heap. A topic
/// of n levels needs at most n + 1, so AWS's 8 levels never spill.
const INLINE_FRAMES: usize = 16;

/// Every subscription a broker holds, keyed by (filter, subscriber).
///
/// `K` identifies a subscriber (a session); `V` is whatever the broker keeps per
/// subscription (QoS, MQTT 5 options, subscription identifier).
#[derive(Debug)]
pub struct SubscriptionIndex<K, V> {
    mode: MatchMode,
    /// The trie; `nodes[ROOT]` is the root and is never freed.
    nodes: Vec<Node<K, V>>,
    /// Slots of pruned nodes, reused before the arena grows.
    free: Vec<NodeId>,
    /// Each subscriber's filters (exactly as inserted), so a session's end costs
    /// its own subscriptions, not a walk of the whole trie.
    by_subscriber: Map<K, Set<Arc<str>>>,
    /// Subscriptions whose filter is malformed. Callers validate first, so this
    /// stays empty in practice; keeping them here (rather than refusing or
    /// panicking) keeps `insert` infallible and `len`/`remove` exact, and they
    /// never match, as [`crate::matches`] would say.
    malformed: Map<Arc<str>, Map<K, V>>,
    /// The text of every shared subscription (`$share/<group>/<filter>`)
    /// with at least one member: what a cluster node asks NATS to share.
    shared_filters: Set<Arc<str>>,
    len: usize,
}

#[derive(Debug)]
struct Node<K, V> {
    exact: Map<Box<str>, NodeId>,
    plus: Option<NodeId>,
    /// Filters that end at this node (`a/b` at the node for `b`).
    here: Option<Box<Subscriptions<K, V>>>,
    /// Filters that end in `#` right below this node (`a/#` at the node for `a`,
    /// `#` at the root).
    hash: Option<Box<Subscriptions<K, V>>>,
}

/// Everything subscribed with one filter (ignoring share groups).
#[derive(Debug)]
struct Subscriptions<K, V> {
    /// The filter text, handed to the caller for every plain match.
    filter: Arc<str>,
    plain: Map<K, V>,
    shared: Vec<SharedGroup<K, V>>,
}

#[derive(Debug)]
struct SharedGroup<K, V> {
    name: Box<str>,
    /// The whole `$share/<group>/<filter>` text, handed to the caller.
    filter: Arc<str>,
    /// Sorted by key, never empty (an emptied group is dropped).
    members: Vec<(K, V)>,
    next: AtomicUsize,
}

#[derive(Clone, Copy)]
enum Slot {
    Here,
    Hash,
}

impl<K, V> Node<K, V> {
    fn new() -> Self {
        Node {
            exact: Map::default(),
            plus: None,
            here: None,
            hash: None,
        }
    }

    fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.plus.is_none() && self.here.is_none() && self.hash.is_none()
    }

    fn slot(&self, slot: Slot) -> &Option<Box<Subscriptions<K, V>>> {
        match slot {
            Slot::Here => &self.here,
            Slot::Hash => &self.hash,
        }
    }

    fn slot_mut(&mut self, slot: Slot) -> &mut Option<Box<Subscriptions<K, V>>> {
        match slot {
            Slot::Here => &mut self.here,
            Slot::Hash => &mut self.hash,
        }
    }
}

impl<K, V> Subscriptions<K, V> {
    fn is_empty(&self) -> bool {
        self.plain.is_empty() && self.shared.is_empty()
    }
}

impl<K, V> SubscriptionIndex<K, V>
where
    K: Clone + Eq + Hash + Ord,
{
    /// An empty index matching in `mode`.
    pub fn new(mode: MatchMode) -> Self {
        SubscriptionIndex {
            mode,
            nodes: vec![Node::new()],
            free: Vec::new(),
            by_subscriber: Map::default(),
            malformed: Map::default(),
            shared_filters: Set::default(),
            len: 0,
        }
    }

    /// The matching mode this index was built with.
    pub fn mode(&self) -> MatchMode {
        self.mode
    }

    /// Adds `subscriber`'s subscription to `filter`, or replaces it and returns the
    /// old value (MQTT: a SUBSCRIBE for a filter the session already has replaces
    /// that subscription).
    ///
    /// `filter` is the text from SUBSCRIBE, `$share/<group>/` included: a shared
    /// and a plain subscription to the same filter are two entries. Validate it
    /// first ([`crate::validate_topic_filter`]); a malformed one is kept, so that
    /// `len` and `remove` stay exact, but never matches.
    pub fn insert(&mut self, filter: &str, subscriber: K, value: V) -> Option<V> {
        let Ok(parsed) = parse_filter(filter) else {
            return self.insert_malformed(filter, subscriber, value);
        };
        let (id, slot) = self.walk_or_create(parsed.filter);
        let subs = self.nodes[id]
            .slot_mut(slot)
            .get_or_insert_with(|| {
                Box::new(Subscriptions {
                    filter: Arc::from(parsed.filter),
                    plain: Map::default(),
                    shared: Vec::new(),
                })
            })
            .as_mut();
        let (old, text) = match parsed.share_group {
            None => (subs.plain.insert(subscriber.clone(), value), &subs.filter),
            Some(group) => {
                // A filter has few groups; a scan beats a map here.
                let at = match subs.shared.iter().position(|g| &*g.name == group) {
                    Some(at) => at,
                    None => {
                        let text: Arc<str> = Arc::from(filter);
                        self.shared_filters.insert(Arc::clone(&text));
                        subs.shared.push(SharedGroup {
                            name: group.into(),
                            filter: text,
                            members: Vec::new(),
                            next: AtomicUsize::new(0),
                        });
                        subs.shared.len() - 1
                    }
                };
                let group = &mut subs.shared[at];
                let old = match group.members.binary_search_by(|(k, _)| k.cmp(&subscriber)) {
                    Ok(i) => Some(std::mem::replace(&mut group.members[i].1, value)),
                    Err(i) => {
                        group.members.insert(i, (subscriber.clone(), value));
                        None
                    }
                };
                (old, &group.filter)
            }
        };
        if old.is_none() {
            let text = Arc::clone(text);
            self.len += 1;
            self.by_subscriber
                .entry(subscriber)
                .or_default()
                .insert(text);
        }
        old
    }

    /// The value of `subscriber`'s subscription to `filter` (exact text), if any.
    pub fn get(&self, filter: &str, subscriber: &K) -> Option<&V> {
        let Ok(parsed) = parse_filter(filter) else {
            return self.malformed.get(filter)?.get(subscriber);
        };
        let (id, slot) = self.walk(parsed.filter, |_, _| {})?;
        let subs = self.nodes[id].slot(slot).as_deref()?;
        match parsed.share_group {
            None => subs.plain.get(subscriber),
            Some(group) => {
                let group = subs.shared.iter().find(|g| &*g.name == group)?;
                let i = group
                    .members
                    .binary_search_by(|(k, _)| k.cmp(subscriber))
                    .ok()?;
                Some(&group.members[i].1)
            }
        }
    }

    /// Removes `subscriber`'s subscription to `filter` (exact text, as inserted)
    /// and returns its value; `None` if there was none.
    pub fn remove(&mut self, filter: &str, subscriber: &K) -> Option<V> {
        let old = self.remove_entry(filter, subscriber)?;
        if let Some(filters) = self.by_subscriber.get_mut(subscriber) {
            filters.remove(filter);
            if filters.is_empty() {
                self.by_subscriber.remove(subscriber);
            }
        }
        Some(old)
    }

    /// Removes every subscription of `subscriber` (its session ended) and returns
    /// how many there were.
    pub fn remove_subscriber(&mut self, subscriber: &K) -> usize {
        let Some(filters) = self.by_subscriber.remove(subscriber) else {
            return 0;
        };
        for filter in &filters {
            let removed = self.remove_entry(filter, subscriber);
            debug_assert!(removed.is_some(), "by_subscriber out of step with the trie");
        }
        filters.len()
    }

    /// How many subscriptions `subscriber` holds.
    pub fn count_of(&self, subscriber: &K) -> usize {
        self.by_subscriber.get(subscriber).map_or(0, Set::len)
    }

    /// The filters `subscriber` holds, exactly as inserted, in no particular order.
    pub fn filters_of<'a>(&'a self, subscriber: &K) -> impl Iterator<Item = &'a str> + 'a {
        self.by_subscriber
            .get(subscriber)
            .into_iter()
            .flat_map(|filters| filters.iter().map(|f| &**f))
    }

    /// Calls `f(filter, subscriber, value)` for every subscription that matches the
    /// topic name `topic`: each plain one, and for each shared group one member
    /// chosen round-robin. `filter` is the subscription's text as inserted
    /// (`$share/...` included). A subscriber with several matching filters is
    /// called once per filter: MQTT's rules for overlapping subscriptions are the
    /// broker's to apply. The order of calls is unspecified.
    ///
    /// A topic that is not a well-formed topic name (empty, or containing `+`,
    /// `#` or U+0000) matches nothing.
    pub fn for_each_match(&self, topic: &str, f: impl FnMut(&str, &K, &V)) {
        self.match_topic(topic, Shares::OneEach, f);
    }

    /// [`Self::for_each_match`] without the shared subscriptions: on a
    /// cluster node, each shared subscription's messages come through
    /// [`Self::pick_shared`] instead, once across the cluster.
    pub fn for_each_plain_match(&self, topic: &str, f: impl FnMut(&str, &K, &V)) {
        self.match_topic(topic, Shares::Skip, f);
    }

    /// Calls `f` for the next member, round-robin, of the shared
    /// subscription `shared_filter` (`$share/<group>/<filter>`, as
    /// inserted); not at all when it has no member here.
    pub fn pick_shared(&self, shared_filter: &str, mut f: impl FnMut(&str, &K, &V)) {
        let Ok(parsed) = parse_filter(shared_filter) else {
            return;
        };
        let Some(name) = parsed.share_group else {
            return;
        };
        let Some((id, slot)) = self.walk(parsed.filter, |_, _| {}) else {
            return;
        };
        let Some(subs) = self.nodes[id].slot(slot).as_deref() else {
            return;
        };
        if let Some(group) = subs.shared.iter().find(|g| &*g.name == name) {
            pick(group, &mut f);
        }
    }

    /// The text of every shared subscription that has a member here.
    pub fn shared_filters(&self) -> impl Iterator<Item = &str> + '_ {
        self.shared_filters.iter().map(|f| &**f)
    }

    /// How many [`Self::shared_filters`] there are, without walking them.
    pub fn shared_filter_count(&self) -> usize {
        self.shared_filters.len()
    }

    fn match_topic(&self, topic: &str, shares: Shares, mut f: impl FnMut(&str, &K, &V)) {
        if !is_topic_name_syntax(topic) {
            return;
        }
        // Filters starting with a wildcard never match `$` topics; they all hang
        // from the root's `+` child or its `#` bucket.
        let reserved = topic.starts_with('$');
        // `pos` is where the next level starts; one past the end means every
        // level was consumed (the topic "a/" has a last, empty level at 2).
        let done = topic.len() + 1;
        let mut stack = Stack::new();
        stack.push((ROOT, 0));
        while let Some((id, pos)) = stack.pop() {
            let node = &self.nodes[id];
            if pos == done {
                emit(&node.here, shares, &mut f);
                if self.mode == MatchMode::Mqtt {
                    // `a/#` matches `a` in MQTT (not in AWS).
                    emit(&node.hash, shares, &mut f);
                }
                continue;
            }
            let wildcards = !(reserved && id == ROOT);
            if wildcards {
                emit(&node.hash, shares, &mut f);
            }
            let end = topic[pos..].find('/').map_or(topic.len(), |i| pos + i);
            if wildcards {
                if let Some(plus) = node.plus {
                    stack.push((plus, end + 1));
                }
            }
            if let Some(&child) = node.exact.get(&topic[pos..end]) {
                stack.push((child, end + 1));
            }
        }
    }

    /// How many (filter, subscriber) subscriptions there are.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no subscriptions.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many subscribers hold at least one subscription.
    pub fn subscriber_count(&self) -> usize {
        self.by_subscriber.len()
    }

    /// Trie nodes in use, the root included: a memory gauge. One for an empty
    /// index, whatever it held before.
    pub fn node_count(&self) -> usize {
        self.nodes.len() - self.free.len()
    }

    fn insert_malformed(&mut self, filter: &str, subscriber: K, value: V) -> Option<V> {
        let (text, old) = match self.malformed.get_key_value(filter) {
            Some((text, _)) => {
                let text = Arc::clone(text);
                let old = self
                    .malformed
                    .get_mut(filter)
                    .and_then(|subs| subs.insert(subscriber.clone(), value));
                (text, old)
            }
            None => {
                let text: Arc<str> = Arc::from(filter);
                let subs = Map::from_iter([(subscriber.clone(), value)]);
                self.malformed.insert(Arc::clone(&text), subs);
                (text, None)
            }
        };
        if old.is_none() {
            self.len += 1;
            self.by_subscriber
                .entry(subscriber)
                .or_default()
                .insert(text);
        }
        old
    }

    /// Removes one entry from the trie (or the malformed bucket) and prunes, but
    /// leaves `by_subscriber` to the caller.
    fn remove_entry(&mut self, filter: &str, subscriber: &K) -> Option<V> {
        let Ok(parsed) = parse_filter(filter) else {
            let subs = self.malformed.get_mut(filter)?;
            let old = subs.remove(subscriber)?;
            if subs.is_empty() {
                self.malformed.remove(filter);
            }
            self.len -= 1;
            return Some(old);
        };
        // The path down, as (parent, level) pairs, to prune back up it.
        let mut path: Vec<(NodeId, &str)> = Vec::new();
        let (id, slot) = self.walk(parsed.filter, |parent, level| path.push((parent, level)))?;
        let bucket = self.nodes[id].slot_mut(slot);
        let subs = bucket.as_mut()?;
        let old = match parsed.share_group {
            None => subs.plain.remove(subscriber)?,
            Some(group) => {
                let at = subs.shared.iter().position(|g| &*g.name == group)?;
                let members = &mut subs.shared[at].members;
                let i = members.binary_search_by(|(k, _)| k.cmp(subscriber)).ok()?;
                let (_, old) = members.remove(i);
                if members.is_empty() {
                    let group = subs.shared.swap_remove(at);
                    self.shared_filters.remove(&group.filter);
                }
                old
            }
        };
        if subs.is_empty() {
            *bucket = None;
        }
        self.len -= 1;
        self.prune(id, &path);
        Some(old)
    }

    /// Follows `filter`'s levels down the trie without creating anything, telling
    /// `step` each (parent, level) edge taken. `None` if some node is missing.
    fn walk<'f>(
        &self,
        filter: &'f str,
        mut step: impl FnMut(NodeId, &'f str),
    ) -> Option<(NodeId, Slot)> {
        let mut id = ROOT;
        for level in filter.split('/') {
            if level == "#" {
                return Some((id, Slot::Hash));
            }
            let node = &self.nodes[id];
            let child = match level {
                "+" => node.plus?,
                _ => *node.exact.get(level)?,
            };
            step(id, level);
            id = child;
        }
        Some((id, Slot::Here))
    }

    fn walk_or_create(&mut self, filter: &str) -> (NodeId, Slot) {
        let mut id = ROOT;
        for level in filter.split('/') {
            if level == "#" {
                return (id, Slot::Hash);
            }
            let existing = match level {
                "+" => self.nodes[id].plus,
                _ => self.nodes[id].exact.get(level).copied(),
            };
            id = match existing {
                Some(child) => child,
                None => {
                    let child = self.alloc();
                    let node = &mut self.nodes[id];
                    match level {
                        "+" => node.plus = Some(child),
                        _ => {
                            node.exact.insert(level.into(), child);
                        }
                    }
                    child
                }
            };
        }
        (id, Slot::Here)
    }

    /// Frees `id` and its ancestors along `path` for as long as they are empty.
    fn prune(&mut self, mut id: NodeId, path: &[(NodeId, &str)]) {
        for &(parent, level) in path.iter().rev() {
            if !self.nodes[id].is_empty() {
                return;
            }
            let node = &mut self.nodes[parent];
            match level {
                "+" => node.plus = None,
                _ => {
                    node.exact.remove(level);
                    // A map that once held many children keeps its table; give
                    // the memory back once it is mostly empty.
                    if node.exact.capacity() > 64 && node.exact.len() < node.exact.capacity() / 4 {
                        node.exact.shrink_to_fit();
                    }
                }
            }
            self.nodes[id] = Node::new();
            self.free.push(id);
            id = parent;
        }
    }

    fn alloc(&mut self) -> NodeId {
        match self.free.pop() {
            Some(id) => id,
            None => {
                self.nodes.push(Node::new());
                self.nodes.len() - 1
            }
        }
    }
}

impl<K, V> Default for SubscriptionIndex<K, V>
where
    K: Clone + Eq + Hash + Ord,
{
    /// An empty index with AWS matching.
    fn default() -> Self {
        SubscriptionIndex::new(MatchMode::Aws)
    }
}

/// Which shared subscriptions a match calls back for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shares {
    /// One member of each matching group.
    OneEach,
    /// None.
    Skip,
}

fn emit<K, V>(
    subs: &Option<Box<Subscriptions<K, V>>>,
    shares: Shares,
    f: &mut impl FnMut(&str, &K, &V),
) {
    let Some(subs) = subs else { return };
    for (subscriber, value) in &subs.plain {
        f(&subs.filter, subscriber, value);
    }
    if shares == Shares::OneEach {
        for group in &subs.shared {
            pick(group, f);
        }
    }
}

/// The group's next member, round-robin.
fn pick<K, V>(group: &SharedGroup<K, V>, f: &mut impl FnMut(&str, &K, &V)) {
    if group.members.is_empty() {
        return;
    }
    // Relaxed: the counter only has to hand out distinct numbers; nothing
    // else is published through it.
    let turn = group.next.fetch_add(1, Ordering::Relaxed) % group.members.len();
    let (subscriber, value) = &group.members[turn];
    f(&group.filter, subscriber, value);
}

/// A LIFO of (node, position) frames that lives on the stack until it outgrows
/// [`INLINE_FRAMES`], so routing an ordinary topic allocates nothing.
struct Stack {
    inline: [(NodeId, usize); INLINE_FRAMES],
    inline_len: usize,
    /// Newer than everything inline: frames go here only once `inline` is full.
    spill: Vec<(NodeId, usize)>,
}

impl Stack {
    fn new() -> Self {
        Stack {
            inline: [(0, 0); INLINE_FRAMES],
            inline_len: 0,
            spill: Vec::new(),
        }
    }

    fn push(&mut self, frame: (NodeId, usize)) {
        if self.inline_len < INLINE_FRAMES {
            self.inline[self.inline_len] = frame;
            self.inline_len += 1;
        } else {
            self.spill.push(frame);
        }
    }

    fn pop(&mut self) -> Option<(NodeId, usize)> {
        if let Some(frame) = self.spill.pop() {
            return Some(frame);
        }
        self.inline_len = self.inline_len.checked_sub(1)?;
        Some(self.inline[self.inline_len])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_is_lifo_across_the_spill() {
        let mut stack = Stack::new();
        let n = INLINE_FRAMES * 3;
        for i in 0..n {
            stack.push((i, i));
        }
        for i in (n / 2..n).rev() {
            assert_eq!(stack.pop(), Some((i, i)));
        }
        stack.push((999, 999));
        assert_eq!(stack.pop(), Some((999, 999)));
        for i in (0..n / 2).rev() {
            assert_eq!(stack.pop(), Some((i, i)));
        }
        assert_eq!(stack.pop(), None);
    }

    #[test]
    fn pruned_slots_are_reused() {
        let mut index = SubscriptionIndex::new(MatchMode::Aws);
        index.insert("a/b/c", 1u32, ());
        assert_eq!(index.node_count(), 4);
        index.remove("a/b/c", &1);
        assert_eq!(index.node_count(), 1);
        assert_eq!(index.free.len(), 3);
        index.insert("x/y", 1u32, ());
        assert_eq!(index.nodes.len(), 4, "the arena did not grow");
        assert_eq!(index.node_count(), 3);
    }
}
