//! The shared in-process cache behind the `cache` capability: key/value entries with TTLs
//! and windowed counters, bounded in size. Keys arrive already namespaced per pack. A pack's
//! invalidations also reach the other replicas when a [`CacheBus`] is attached.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use super::cache_bus::{CacheBus, Change};

/// Entries kept at most; past this, expired entries are swept and new ones skipped.
const MAX_ENTRIES: usize = 100_000;
/// Longest counter window (a year).
const MAX_WINDOW: Duration = Duration::from_secs(366 * 24 * 3600);

struct Entry {
    value: Vec<u8>,
    expires: Option<Instant>,
    /// which write this is: no two writes share one, so a reader can tell "the same entry
    /// as before" from "rewritten since"
    stamp: u64,
}

impl Entry {
    fn live(&self, now: Instant) -> bool {
        self.expires.is_none_or(|t| t > now)
    }
}

struct Window {
    value: i64,
    resets: Instant,
}

/// The shared cache.
#[derive(Default)]
pub struct Cache {
    entries: RwLock<HashMap<String, Entry>>,
    counters: Mutex<HashMap<String, Window>>,
    /// the last write's stamp
    writes: AtomicU64,
    /// on PostgreSQL: the other replicas hear of every invalidation
    bus: OnceLock<Arc<CacheBus>>,
}

impl Cache {
    /// From now on, invalidations also go to the other replicas through `bus`.
    pub fn attach(&self, bus: Arc<CacheBus>) {
        let _ = self.bus.set(bus);
    }

    /// The bus invalidations go out on, if any.
    pub fn bus(&self) -> Option<&Arc<CacheBus>> {
        self.bus.get()
    }

    /// A pack's `delete`: here, and on every other replica.
    pub fn invalidate(&self, key: &str) {
        self.delete(key);
        if let Some(bus) = self.bus.get() {
            bus.publish(Change::Key(key.to_string()));
        }
    }

    /// A pack's `delete-prefix`: here, and on every other replica.
    pub fn invalidate_prefix(&self, prefix: &str) -> u32 {
        let n = self.delete_prefix(prefix);
        if let Some(bus) = self.bus.get() {
            bus.publish(Change::Prefix(prefix.to_string()));
        }
        n
    }

    /// Drop every entry and counter (the invalidations from other replicas may have been
    /// missed).
    pub fn clear(&self) {
        if let Ok(mut entries) = self.entries.write() {
            entries.clear();
        }
        if let Ok(mut counters) = self.counters.lock() {
            counters.clear();
        }
    }

    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.get_stamped(key).map(|(value, _)| value)
    }

    /// A live entry's value and the stamp of the write that made it.
    pub fn get_stamped(&self, key: &str) -> Option<(Vec<u8>, u64)> {
        let entries = self.entries.read().ok()?;
        let entry = entries.get(key)?;
        entry
            .live(Instant::now())
            .then(|| (entry.value.clone(), entry.stamp))
    }

    /// The stamp of a live entry's write: the same number while nobody rewrites, deletes or
    /// outlives it.
    pub fn stamp(&self, key: &str) -> Option<u64> {
        let entries = self.entries.read().ok()?;
        let entry = entries.get(key)?;
        entry.live(Instant::now()).then_some(entry.stamp)
    }

    pub fn set(&self, key: String, value: Vec<u8>, ttl: Option<Duration>) {
        self.set_stamped(key, value, ttl);
    }

    /// Write an entry; answers its stamp (none when the cache is full).
    pub fn set_stamped(&self, key: String, value: Vec<u8>, ttl: Option<Duration>) -> Option<u64> {
        let Ok(mut entries) = self.entries.write() else {
            return None;
        };
        let now = Instant::now();
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(&key) {
            entries.retain(|_, e| e.live(now));
            if entries.len() >= MAX_ENTRIES {
                tracing::warn!("cache full ({MAX_ENTRIES} entries), not caching");
                return None;
            }
        }
        let expires = ttl.and_then(|d| now.checked_add(d));
        let stamp = self.writes.fetch_add(1, Ordering::Relaxed) + 1;
        entries.insert(
            key,
            Entry {
                value,
                expires,
                stamp,
            },
        );
        Some(stamp)
    }

    pub fn delete(&self, key: &str) {
        if let Ok(mut entries) = self.entries.write() {
            entries.remove(key);
        }
        if let Ok(mut counters) = self.counters.lock() {
            counters.remove(key);
        }
    }

    pub fn delete_prefix(&self, prefix: &str) -> u32 {
        let mut n = 0u32;
        if let Ok(mut entries) = self.entries.write() {
            entries.retain(|k, _| {
                let keep = !k.starts_with(prefix);
                n += u32::from(!keep);
                keep
            });
        }
        if let Ok(mut counters) = self.counters.lock() {
            counters.retain(|k, _| !k.starts_with(prefix));
        }
        n
    }

    /// Add `delta` to the counter `key`, starting a new window of `window` when the last ended.
    pub fn incr(&self, key: &str, delta: i64, window: Duration) -> Option<(i64, Duration)> {
        let mut counters = self.counters.lock().ok()?;
        let now = Instant::now();
        // a window past any sensible length is capped rather than overflowing the clock
        let window = window.min(MAX_WINDOW);
        // Adding 0 reads: an absent (or lapsed) counter is 0 and is not created, so reads of
        // ever-new keys (a write generation checked before loading a missing record) cost
        // no memory.
        if delta == 0 && counters.get(key).is_none_or(|w| w.resets <= now) {
            return Some((0, window));
        }
        if counters.len() >= MAX_ENTRIES && !counters.contains_key(key) {
            counters.retain(|_, w| w.resets > now);
        }
        let w = counters.entry(key.to_string()).or_insert(Window {
            value: 0,
            resets: now + window,
        });
        if w.resets <= now {
            w.value = 0;
            w.resets = now + window;
        }
        w.value = w.value.saturating_add(delta);
        Some((w.value, w.resets - now))
    }
}

impl Cache {
    /// Live counters whose keys start with `prefix`, at most `limit`, sorted by key.
    pub fn counters(&self, prefix: &str, limit: usize) -> Vec<(String, i64, Duration)> {
        let Ok(counters) = self.counters.lock() else {
            return Vec::new();
        };
        let now = Instant::now();
        let mut live: Vec<_> = counters
            .iter()
            .filter(|(k, w)| k.starts_with(prefix) && w.resets > now)
            .map(|(k, w)| (k.clone(), w.value, w.resets - now))
            .collect();
        live.sort_by(|a, b| a.0.cmp(&b.0));
        live.truncate(limit);
        live
    }

    /// Forget the counters (not the entries) whose keys start with `prefix`; how many went.
    pub fn delete_counters(&self, prefix: &str) -> u32 {
        let Ok(mut counters) = self.counters.lock() else {
            return 0;
        };
        let before = counters.len();
        counters.retain(|k, _| !k.starts_with(prefix));
        u32::try_from(before - counters.len()).unwrap_or(u32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_expires() {
        let c = Cache::default();
        c.set("a".into(), b"1".to_vec(), Some(Duration::from_millis(0)));
        assert_eq!(c.get("a"), None);
        c.set("b".into(), b"2".to_vec(), None);
        assert_eq!(c.get("b"), Some(b"2".to_vec()));
    }

    #[test]
    fn a_stamp_stays_until_the_entry_is_rewritten_deleted_or_lapses() {
        let c = Cache::default();
        let first = c.set_stamped("k".into(), b"1".to_vec(), None).unwrap();
        assert_eq!(c.stamp("k"), Some(first));
        assert_eq!(c.get_stamped("k"), Some((b"1".to_vec(), first)));
        let second = c.set_stamped("k".into(), b"1".to_vec(), None).unwrap();
        assert_ne!(
            first, second,
            "the same value written again is another write"
        );
        c.delete("k");
        assert_eq!(c.stamp("k"), None);
        c.set("t".into(), vec![], Some(Duration::from_millis(0)));
        assert_eq!(c.stamp("t"), None);
    }

    #[test]
    fn prefix_delete_counts() {
        let c = Cache::default();
        c.set("p:a".into(), vec![], None);
        c.set("p:b".into(), vec![], None);
        c.set("q:a".into(), vec![], None);
        assert_eq!(c.delete_prefix("p:"), 2);
        assert!(c.get("q:a").is_some());
    }

    #[test]
    fn huge_windows_and_ttls_do_not_overflow() {
        let c = Cache::default();
        assert_eq!(
            c.incr("k", 1, Duration::from_millis(u64::MAX)).unwrap().0,
            1
        );
        assert_eq!(
            c.incr("k", 1, Duration::from_millis(u64::MAX)).unwrap().0,
            2
        );
        c.set("t".into(), vec![1], Some(Duration::from_millis(u64::MAX)));
        assert!(c.get("t").is_some());
    }

    #[test]
    fn adding_zero_reads_without_creating() {
        let c = Cache::default();
        let minute = Duration::from_secs(60);
        for i in 0..1000 {
            assert_eq!(c.incr(&format!("gen:{i}"), 0, minute).unwrap().0, 0);
        }
        assert!(c.counters("gen:", 10).is_empty(), "nothing created");
        assert_eq!(c.incr("gen:1", 1, minute).unwrap().0, 1);
        assert_eq!(
            c.incr("gen:1", 0, minute).unwrap().0,
            1,
            "a live counter is read"
        );
        assert_eq!(c.counters("gen:", 10).len(), 1);
        c.incr("lapsed", 5, Duration::from_millis(0)).unwrap();
        assert_eq!(c.incr("lapsed", 0, minute).unwrap().0, 0);
    }

    #[test]
    fn counter_windows() {
        let c = Cache::default();
        assert_eq!(c.incr("k", 1, Duration::from_secs(60)).unwrap().0, 1);
        assert_eq!(c.incr("k", 2, Duration::from_secs(60)).unwrap().0, 3);
        assert_eq!(c.incr("z", 1, Duration::from_millis(0)).unwrap().0, 1);
        assert_eq!(c.incr("z", 1, Duration::from_millis(0)).unwrap().0, 1);
    }
}
