//! The host's shared cache, with JSON helpers. Keys are private to the pack.

use crate::alloc_prelude::*;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Problem;
use crate::bindings::valhalla::pack::cache as host_cache;
pub use host_cache::Counter;

/// A cached JSON value; a missing or undecodable entry is `None`.
pub fn get_json<T: DeserializeOwned>(key: &str) -> Option<T> {
    host_cache::get(key).and_then(|bytes| serde_json::from_slice(&bytes).ok())
}

/// [`get_json`] of each of `keys`, in order, in one call to the host.
pub fn get_many_json<T: DeserializeOwned>(keys: &[String]) -> Vec<Option<T>> {
    host_cache::get_many(keys)
        .into_iter()
        .map(|v| v.and_then(|bytes| serde_json::from_slice(&bytes).ok()))
        .collect()
}

/// Is there a live entry under `key`? (A full cache skips new entries: this tells.)
pub fn has(key: &str) -> bool {
    host_cache::get(key).is_some()
}

/// Cache `value` as JSON, for `ttl_ms` or until invalidated.
pub fn set_json<T: Serialize>(key: &str, value: &T, ttl_ms: Option<u64>) {
    if let Ok(bytes) = serde_json::to_vec(value) {
        host_cache::set(key, &bytes, ttl_ms);
    }
}

/// How long a record's write generation is remembered; past it, a generation starts again
/// at zero, which at worst drops one freshly cached value.
const GENERATION_WINDOW_MS: u64 = 24 * 60 * 60 * 1000;

fn generation_key(key: &str) -> String {
    format!("{key}\u{1f}generation")
}

/// The record's write generation (`bump` = after a write).
fn generation(key: &str, bump: i64) -> Option<i64> {
    incr(&generation_key(key), bump, GENERATION_WINDOW_MS).map(|c| c.value)
}

/// A record read through the cache: from the cache when it is there, else from `load`, whose
/// answer (when found) is cached for `ttl_ms`. Pair it with [`invalidate`] after every write
/// of the record, and a reader that loaded the old value while a writer committed never
/// leaves it cached: it re-checks the record's write generation after caching and drops its
/// entry if a write came in between.
pub fn read_through<T: Serialize + DeserializeOwned>(
    key: &str,
    ttl_ms: u64,
    load: impl FnOnce() -> Result<Option<T>, Problem>,
) -> Result<Option<T>, Problem> {
    if let Some(value) = get_json::<T>(key) {
        return Ok(Some(value));
    }
    let before = generation(key, 0);
    let value = load()?;
    if let Some(v) = &value {
        set_json(key, v, Some(ttl_ms));
        if before.is_none() || generation(key, 0) != before {
            delete(key);
        }
    }
    Ok(value)
}

/// After a write of the record (once it is committed): drop its cached value, and make any
/// read in flight drop the value it is about to cache.
pub fn invalidate(key: &str) {
    generation(key, 1);
    delete(key);
}

/// Drop `key` from the cache.
pub fn delete(key: &str) {
    host_cache::delete(key);
}

/// Drop every key that starts with `prefix`; answers how many went.
pub fn delete_prefix(prefix: &str) -> u32 {
    host_cache::delete_prefix(prefix)
}

/// Atomically add `delta` to a counter with a window of `window_ms`.
pub fn incr(key: &str, delta: i64, window_ms: u64) -> Option<Counter> {
    host_cache::incr(key, delta, window_ms).ok()
}

/// Live counters under `prefix` (at most `limit`), with the key relative to the pack.
pub fn counters(prefix: &str, limit: u32) -> Vec<(String, Counter)> {
    host_cache::counters(prefix, limit)
}
