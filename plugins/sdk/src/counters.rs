//! Windowed counters every replica counts together (the host's `counters`: exact across
//! processes on PostgreSQL, in memory on SQLite). For counts that must hold for the whole
//! service, such as rate limits; [`crate::cache::incr`] is the cheaper per-process counter.
//! Keys are private to the pack.

use crate::alloc_prelude::*;

use crate::Problem;
pub use crate::bindings::valhalla::pack::cache::Counter;
use crate::bindings::valhalla::pack::counters as host_counters;

/// A counter the host could not reach: the request cannot be counted, so it is not served.
fn unavailable(e: crate::capability::Error) -> Problem {
    match e {
        crate::capability::Error::Invalid(m) => Problem::internal(format!("counters: {m}")),
        e => Problem::unavailable(crate::capability::message(&e)),
    }
}

/// Atomically add `delta` to `key`'s counter, which resets `window_ms` after its first
/// increment; a `delta` of 0 reads it. The counters being unreachable is a 503.
pub fn incr(key: &str, delta: i64, window_ms: u64) -> Result<Counter, Problem> {
    host_counters::incr(key, delta, window_ms).map_err(unavailable)
}

/// The live counters whose keys start with `prefix` (at most `limit`), by key.
pub fn live(prefix: &str, limit: u32) -> Result<Vec<(String, Counter)>, Problem> {
    host_counters::live(prefix, limit).map_err(unavailable)
}

/// Forget every counter whose key starts with `prefix`; how many went.
pub fn reset(prefix: &str) -> Result<u32, Problem> {
    host_counters::reset(prefix).map_err(unavailable)
}
