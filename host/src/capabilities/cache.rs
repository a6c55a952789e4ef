//! `cache`: the shared in-process key/value store ([`Cache`]) with TTLs and windowed
//! counters. Each pack sees only its own keys: the host prefixes them with the pack's name.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{HasData, Linker};

pub use super::shared_cache::Cache;
use crate::runtime::bindings::CapabilityError;
use crate::runtime::bindings::valhalla::pack::cache::{self, Counter, Host};

/// Between a pack's name and its key: no pack name contains it.
const SEPARATOR: char = '\u{1f}';

/// One pack's `cache`: its namespace in the shared cache.
pub struct PackCache {
    /// `<pack>\u{1f}`
    namespace: String,
    cache: Arc<Cache>,
}

impl PackCache {
    pub fn new(pack: &str, cache: Arc<Cache>) -> Self {
        Self {
            namespace: format!("{pack}{SEPARATOR}"),
            cache,
        }
    }

    /// `key` in the shared cache.
    fn key(&self, key: &str) -> String {
        let mut k = String::with_capacity(self.namespace.len() + key.len());
        k.push_str(&self.namespace);
        k.push_str(key);
        k
    }
}

/// What one call's `cache` imports see (nothing of the call: the cache is the pack's).
pub struct CacheView<'a> {
    pub cache: &'a PackCache,
}

struct CacheData;

impl HasData for CacheData {
    type Data<'a> = CacheView<'a>;
}

/// Link `cache` for stores whose data `get` views.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> CacheView<'_>,
) -> wasmtime::Result<()> {
    cache::add_to_linker::<T, CacheData>(linker, get)
}

fn counter(value: i64, reset: Duration) -> Counter {
    Counter {
        value,
        reset_ms: reset.as_millis() as u64,
    }
}

impl Host for CacheView<'_> {
    fn get(&mut self, key: String) -> Option<Vec<u8>> {
        self.cache.cache.get(&self.cache.key(&key))
    }

    fn set(&mut self, key: String, value: Vec<u8>, ttl_ms: Option<u64>) {
        let k = self.cache.key(&key);
        self.cache
            .cache
            .set(k, value, ttl_ms.map(Duration::from_millis));
    }

    fn delete(&mut self, key: String) {
        self.cache.cache.delete(&self.cache.key(&key));
    }

    fn delete_prefix(&mut self, prefix: String) -> u32 {
        self.cache.cache.delete_prefix(&self.cache.key(&prefix))
    }

    fn counters(&mut self, prefix: String, limit: u32) -> Vec<(String, Counter)> {
        let own = self.cache.namespace.len();
        self.cache
            .cache
            .counters(&self.cache.key(&prefix), limit as usize)
            .into_iter()
            .map(|(k, value, reset)| {
                let key = k.get(own..).unwrap_or_default().to_string();
                (key, counter(value, reset))
            })
            .collect()
    }

    fn incr(
        &mut self,
        key: String,
        delta: i64,
        window_ms: u64,
    ) -> Result<Counter, CapabilityError> {
        if window_ms == 0 {
            return Err(CapabilityError::Invalid(
                "window-ms must be greater than 0".into(),
            ));
        }
        let (value, reset) = self
            .cache
            .cache
            .incr(
                &self.cache.key(&key),
                delta,
                Duration::from_millis(window_ms),
            )
            .ok_or_else(|| CapabilityError::Internal("cache unavailable".into()))?;
        Ok(counter(value, reset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_packs() -> (Arc<Cache>, PackCache, PackCache) {
        let shared = Arc::new(Cache::default());
        let a = PackCache::new("a", Arc::clone(&shared));
        let b = PackCache::new("b", Arc::clone(&shared));
        (shared, a, b)
    }

    #[test]
    fn keys_are_namespaced_per_pack() {
        let (shared, a, b) = two_packs();
        CacheView { cache: &a }.set("k".into(), b"1".to_vec(), None);
        assert_eq!(CacheView { cache: &a }.get("k".into()), Some(b"1".to_vec()));
        assert_eq!(CacheView { cache: &b }.get("k".into()), None);
        assert_eq!(shared.get("a\u{1f}k"), Some(b"1".to_vec()));
        CacheView { cache: &b }.delete("k".into());
        assert!(CacheView { cache: &a }.get("k".into()).is_some());
    }

    #[test]
    fn prefix_deletes_stay_in_the_pack() {
        let (_, a, b) = two_packs();
        for pack in [&a, &b] {
            CacheView { cache: pack }.set("flag:x".into(), vec![], None);
            CacheView { cache: pack }.set("flag:y".into(), vec![], None);
        }
        // an empty prefix is the whole namespace, not the whole cache
        assert_eq!(CacheView { cache: &a }.delete_prefix(String::new()), 2);
        assert!(CacheView { cache: &b }.get("flag:x".into()).is_some());
    }

    #[test]
    fn counters_answer_the_packs_own_keys() {
        let (_, a, b) = two_packs();
        let mut view = CacheView { cache: &a };
        assert_eq!(view.incr("rl:1".into(), 2, 60_000).unwrap().value, 2);
        CacheView { cache: &b }
            .incr("rl:2".into(), 1, 60_000)
            .unwrap();
        let seen: Vec<String> = view
            .counters("rl:".into(), 10)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(seen, ["rl:1"]);
        assert!(matches!(
            view.incr("rl:1".into(), 1, 0),
            Err(CapabilityError::Invalid(_))
        ));
    }
}
