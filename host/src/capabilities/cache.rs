//! `cache`: the shared in-process key/value store ([`Cache`]) with TTLs and windowed
//! counters. Each pack sees only its own keys: the host prefixes them with the pack's name.
//! A guard may also memoize its decision against one of its entries ([`MemoRequest`]): the
//! guard chain reuses the decision while the entry stays the write the guard saw.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{HasData, Linker};

pub use super::shared_cache::Cache;
use crate::runtime::bindings::CapabilityError;
use crate::runtime::bindings::valhalla::pack::cache::{self, Counter, Host};
pub use crate::runtime::bindings::valhalla::pack::cache::{MemoCounter, MemoInput};

/// Between a pack's name and its key: no pack name contains it.
const SEPARATOR: char = '\u{1f}';

/// Where pack `pack`'s keys live in the shared cache (`<pack>\u{1f}`).
pub fn namespace(pack: &str) -> String {
    format!("{pack}{SEPARATOR}")
}

/// One pack's `cache`: its namespace in the shared cache.
pub struct PackCache {
    /// `<pack>\u{1f}`
    namespace: String,
    cache: Arc<Cache>,
    /// its hits and misses, for `/metrics`
    metrics: crate::metrics::CacheSeries,
}

impl PackCache {
    pub fn new(pack: &str, cache: Arc<Cache>) -> Self {
        Self {
            namespace: namespace(pack),
            cache,
            metrics: crate::metrics::CacheSeries::new(pack),
        }
    }

    /// The shared cache itself (for checking a memoized decision's entry).
    pub fn shared(&self) -> &Arc<Cache> {
        &self.cache
    }

    /// `key` in the shared cache.
    fn key(&self, key: &str) -> String {
        let mut k = String::with_capacity(self.namespace.len() + key.len());
        k.push_str(&self.namespace);
        k.push_str(key);
        k
    }
}

/// What a guard call asked the host to remember: its decision holds for requests equal in
/// `inputs` while the entry `valid_while` (namespaced) keeps the stamp the call saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoRequest {
    pub valid_while: Option<(String, u64)>,
    pub inputs: Vec<MemoInput>,
    /// counters (namespaced) each reuse counts against, with their limits and windows
    pub counters: Vec<Counted>,
}

/// A counter a reused decision counts against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counted {
    /// the counter's key in the shared cache (namespaced)
    pub key: String,
    pub limit: i64,
    pub window: Duration,
}

/// One call's dealings with the cache: the entries it read or wrote (with their stamps),
/// and a memoized decision if it asked for one.
#[derive(Debug, Default)]
pub struct CallCache {
    seen: Vec<(String, u64)>,
    memo: Option<MemoRequest>,
}

impl CallCache {
    /// The memo the call asked for, if its entry was still live when it asked.
    pub fn take_memo(&mut self) -> Option<MemoRequest> {
        self.memo.take()
    }
}

/// What one call's `cache` imports see: the pack's namespace and this call's record.
pub struct CacheView<'a> {
    pub cache: &'a PackCache,
    pub call: &'a mut CallCache,
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

/// A counter's standing as the WIT answers it (`cache` and `counters` alike).
pub(super) fn counter(value: i64, reset: Duration) -> Counter {
    Counter {
        value,
        reset_ms: u64::try_from(reset.as_millis()).unwrap_or(u64::MAX),
    }
}

impl Host for CacheView<'_> {
    fn get(&mut self, key: String) -> Option<Vec<u8>> {
        let k = self.cache.key(&key);
        let found = self.cache.cache.get_stamped(&k);
        self.cache.metrics.lookup(found.is_some());
        let (value, stamp) = found?;
        self.call.seen.push((k, stamp));
        Some(value)
    }

    fn get_many(&mut self, keys: Vec<String>) -> Vec<Option<Vec<u8>>> {
        keys.into_iter().map(|key| self.get(key)).collect()
    }

    fn set(&mut self, key: String, value: Vec<u8>, ttl_ms: Option<u64>) {
        let k = self.cache.key(&key);
        let stamp =
            self.cache
                .cache
                .set_stamped(k.clone(), value, ttl_ms.map(Duration::from_millis));
        if let Some(stamp) = stamp {
            self.call.seen.push((k, stamp));
        }
    }

    fn memoize_decision(&mut self, valid_while: Option<String>, inputs: Vec<MemoInput>) {
        self.memoize(valid_while, inputs, Vec::new());
    }

    fn memoize_counting(
        &mut self,
        valid_while: Option<String>,
        inputs: Vec<MemoInput>,
        counters: Vec<MemoCounter>,
    ) {
        if counters.is_empty() || counters.iter().any(|c| c.window_ms == 0) {
            self.call.memo = None;
            return;
        }
        let counters = counters
            .into_iter()
            .map(|c| Counted {
                key: self.cache.key(&c.key),
                limit: c.limit,
                window: Duration::from_millis(c.window_ms),
            })
            .collect();
        self.memoize(valid_while, inputs, counters);
    }

    fn delete(&mut self, key: String) {
        self.cache.cache.invalidate(&self.cache.key(&key));
    }

    fn delete_prefix(&mut self, prefix: String) -> u32 {
        self.cache.cache.invalidate_prefix(&self.cache.key(&prefix))
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

impl CacheView<'_> {
    /// Record the memo. The entry's stamp is as this call last read or wrote it (what the
    /// decision was made from), else as it is now; an absent entry leaves nothing to
    /// memoize against.
    fn memoize(
        &mut self,
        valid_while: Option<String>,
        inputs: Vec<MemoInput>,
        counters: Vec<Counted>,
    ) {
        let valid_while = match valid_while {
            None => None,
            Some(key) => {
                let k = self.cache.key(&key);
                let seen = self.call.seen.iter().rev().find(|(s, _)| *s == k);
                let stamp = seen
                    .map(|(_, stamp)| *stamp)
                    .or_else(|| self.cache.cache.stamp(&k));
                match stamp {
                    Some(stamp) => Some((k, stamp)),
                    None => {
                        self.call.memo = None;
                        return;
                    }
                }
            }
        };
        self.call.memo = Some(MemoRequest {
            valid_while,
            inputs,
            counters,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A view of `pack` for a call of its own.
    fn view(pack: &PackCache) -> CacheView<'_> {
        CacheView {
            cache: pack,
            call: Box::leak(Box::default()),
        }
    }

    #[test]
    fn a_memo_holds_the_stamp_the_call_saw() {
        let (shared, a, _) = two_packs();
        let mut call = CallCache::default();
        let mut v = CacheView {
            cache: &a,
            call: &mut call,
        };
        v.set("key:h".into(), b"p".to_vec(), None);
        let seen = shared.stamp("a\u{1f}key:h").unwrap();
        // rewritten by someone else after this call read it: the memo keeps the old stamp
        shared.set("a\u{1f}key:h".into(), b"q".to_vec(), None);
        v.memoize_decision(Some("key:h".into()), vec![MemoInput::Credentials]);
        let memo = call.take_memo().unwrap();
        assert_eq!(memo.valid_while, Some(("a\u{1f}key:h".into(), seen)));
        assert_ne!(
            shared.stamp("a\u{1f}key:h"),
            Some(seen),
            "so it is never reused"
        );
        // an entry that is not there gives no memo; none holds for the process
        let mut v = view(&a);
        v.memoize_decision(Some("absent".into()), vec![]);
        assert!(v.call.take_memo().is_none());
        v.memoize_decision(None, vec![MemoInput::ClientIp]);
        assert_eq!(v.call.take_memo().unwrap().valid_while, None);
    }

    fn two_packs() -> (Arc<Cache>, PackCache, PackCache) {
        let shared = Arc::new(Cache::default());
        let a = PackCache::new("a", Arc::clone(&shared));
        let b = PackCache::new("b", Arc::clone(&shared));
        (shared, a, b)
    }

    #[test]
    fn keys_are_namespaced_per_pack() {
        let (shared, a, b) = two_packs();
        view(&a).set("k".into(), b"1".to_vec(), None);
        assert_eq!(view(&a).get("k".into()), Some(b"1".to_vec()));
        assert_eq!(view(&b).get("k".into()), None);
        assert_eq!(shared.get("a\u{1f}k"), Some(b"1".to_vec()));
        view(&b).delete("k".into());
        assert!(view(&a).get("k".into()).is_some());
    }

    #[test]
    fn prefix_deletes_stay_in_the_pack() {
        let (_, a, b) = two_packs();
        for pack in [&a, &b] {
            view(pack).set("flag:x".into(), vec![], None);
            view(pack).set("flag:y".into(), vec![], None);
        }
        // an empty prefix is the whole namespace, not the whole cache
        assert_eq!(view(&a).delete_prefix(String::new()), 2);
        assert!(view(&b).get("flag:x".into()).is_some());
    }

    #[test]
    fn counters_answer_the_packs_own_keys() {
        let (_, a, b) = two_packs();
        let mut own = view(&a);
        assert_eq!(own.incr("rl:1".into(), 2, 60_000).unwrap().value, 2);
        view(&b).incr("rl:2".into(), 1, 60_000).unwrap();
        let seen: Vec<String> = own
            .counters("rl:".into(), 10)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(seen, ["rl:1"]);
        assert!(matches!(
            own.incr("rl:1".into(), 1, 0),
            Err(CapabilityError::Invalid(_))
        ));
    }
}
