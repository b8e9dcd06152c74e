//! Parsed policy documents, kept so that a connection refreshing its
//! authorization does not parse the same JSON again. Keyed by the
//! document's text, so a policy deleted and created again under the same
//! name and version id can never be served stale. Bounded: when full it is
//! emptied (counted), and the documents in use are parsed again on demand.

use crate::error::Result;
use roost_policy::Policy;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Documents kept at most.
pub const POLICY_CACHE_CAPACITY: usize = 1024;

#[derive(Default)]
pub(crate) struct PolicyCache {
    parsed: Mutex<HashMap<String, Arc<Policy>>>,
    /// Times the cache was full and emptied.
    pub(crate) flushes: AtomicU64,
}

impl PolicyCache {
    /// The parsed `document`, from the cache or parsed now (and kept).
    pub(crate) fn get_or_parse(&self, document: &str) -> Result<Arc<Policy>> {
        let lock = || self.parsed.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(policy) = lock().get(document) {
            return Ok(policy.clone());
        }
        // Parsed outside the lock: two connections may parse the same
        // document at once, which costs little and keeps the lock short.
        let policy = Arc::new(crate::policies::check_document(document)?);
        let mut parsed = lock();
        if parsed.len() >= POLICY_CACHE_CAPACITY {
            parsed.clear();
            self.flushes.fetch_add(1, Ordering::Relaxed);
        }
        parsed.insert(document.to_string(), policy.clone());
        Ok(policy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document(n: usize) -> String {
        format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"iot:Publish","Resource":"arn:aws:iot:*:*:topic/t{n}"}}]}}"#
        )
    }

    #[test]
    fn a_document_is_parsed_once() {
        let cache = PolicyCache::default();
        let a = cache.get_or_parse(&document(1)).unwrap();
        let b = cache.get_or_parse(&document(1)).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let c = cache.get_or_parse(&document(2)).unwrap();
        assert!(!Arc::ptr_eq(&a, &c));
    }

    #[test]
    fn the_cache_stays_within_its_bound_and_counts_flushes() {
        let cache = PolicyCache::default();
        for n in 0..POLICY_CACHE_CAPACITY + 10 {
            cache.get_or_parse(&document(n)).unwrap();
        }
        assert!(cache.parsed.lock().unwrap().len() <= POLICY_CACHE_CAPACITY);
        assert_eq!(cache.flushes.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_bad_document_is_an_error_and_not_kept() {
        let cache = PolicyCache::default();
        assert!(cache.get_or_parse("{not json").is_err());
        assert!(cache.parsed.lock().unwrap().is_empty());
    }
}
