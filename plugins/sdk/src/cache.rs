//! The host's shared cache, with JSON helpers. Keys are private to the pack.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bindings::valhalla::pack::cache as host_cache;
pub use host_cache::Counter;

/// A cached JSON value; a missing or undecodable entry is `None`.
pub fn get_json<T: DeserializeOwned>(key: &str) -> Option<T> {
    host_cache::get(key).and_then(|bytes| serde_json::from_slice(&bytes).ok())
}

/// Cache `value` as JSON, for `ttl_ms` or until invalidated.
pub fn set_json<T: Serialize>(key: &str, value: &T, ttl_ms: Option<u64>) {
    if let Ok(bytes) = serde_json::to_vec(value) {
        host_cache::set(key, &bytes, ttl_ms);
    }
}

pub fn delete(key: &str) {
    host_cache::delete(key);
}

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
