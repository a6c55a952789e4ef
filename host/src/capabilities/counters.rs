//! `counters`: windowed counters every replica counts together ([`SharedCounters`]: a row per
//! counter on PostgreSQL, the cache's in-memory counters on SQLite). Each pack sees only its
//! own keys, namespaced as its cache keys are; a call waits for them no longer than its
//! deadline.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::{HasData, Linker};

use super::cache::{counter, namespace};
pub use super::shared_counters::{CounterError, SharedCounters, ensure_table};
use crate::runtime::bindings::CapabilityError;
use crate::runtime::bindings::valhalla::pack::cache::Counter;
use crate::runtime::bindings::valhalla::pack::counters::{self, Host};

/// One pack's `counters`: its namespace among the shared counters.
pub struct PackCounters {
    namespace: String,
    counters: Arc<SharedCounters>,
}

impl PackCounters {
    pub fn new(pack: &str, counters: Arc<SharedCounters>) -> Self {
        Self {
            namespace: namespace(pack),
            counters,
        }
    }

    /// The shared counters themselves (for the guard chain's counting memos).
    pub fn shared(&self) -> &Arc<SharedCounters> {
        &self.counters
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.namespace)
    }
}

/// What one call's `counters` imports see: the pack's namespace and the call's deadline.
pub struct CountersView<'a> {
    pub counters: &'a PackCounters,
    pub deadline: Instant,
}

struct CountersData;

impl HasData for CountersData {
    type Data<'a> = CountersView<'a>;
}

/// Link `counters` for stores whose data `get` views.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> CountersView<'_>,
) -> wasmtime::Result<()> {
    counters::add_to_linker::<T, CountersData>(linker, get)
}

impl CountersView<'_> {
    /// `work`, given up at the call's deadline; a database failure is logged here and
    /// answered as `unavailable` (no detail for the pack).
    async fn within<T>(
        &self,
        work: impl Future<Output = Result<T, CounterError>>,
    ) -> Result<T, CapabilityError> {
        match tokio::time::timeout_at(self.deadline.into(), work).await {
            Ok(Ok(done)) => Ok(done),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "counters unavailable");
                Err(CapabilityError::Unavailable(
                    "the counters are unavailable".into(),
                ))
            }
            Err(_) => Err(CapabilityError::Unavailable(
                "the counters did not answer before the call's deadline".into(),
            )),
        }
    }
}

impl Host for CountersView<'_> {
    async fn incr(
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
        let key = self.counters.key(&key);
        let window = Duration::from_millis(window_ms);
        let shared = &self.counters.counters;
        let (value, reset) = self.within(shared.incr(&key, delta, window)).await?;
        Ok(counter(value, reset))
    }

    async fn live(
        &mut self,
        prefix: String,
        limit: u32,
    ) -> Result<Vec<(String, Counter)>, CapabilityError> {
        let own = self.counters.namespace.len();
        let prefix = self.counters.key(&prefix);
        let shared = &self.counters.counters;
        let live = self.within(shared.list(&prefix, limit as usize)).await?;
        Ok(live
            .into_iter()
            .map(|(k, value, reset)| {
                let key = k.get(own..).unwrap_or_default().to_string();
                (key, counter(value, reset))
            })
            .collect())
    }

    async fn reset(&mut self, prefix: String) -> Result<u32, CapabilityError> {
        let prefix = self.counters.key(&prefix);
        let shared = &self.counters.counters;
        self.within(shared.reset(&prefix)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capabilities::cache::Cache;

    #[tokio::test]
    async fn each_pack_counts_and_sees_only_its_own_keys() {
        let shared = Arc::new(SharedCounters::local(Arc::new(Cache::default())));
        let (a, b) = (
            PackCounters::new("a", Arc::clone(&shared)),
            PackCounters::new("b", Arc::clone(&shared)),
        );
        let far = Instant::now() + Duration::from_secs(5);
        let mut va = CountersView {
            counters: &a,
            deadline: far,
        };
        let mut vb = CountersView {
            counters: &b,
            deadline: far,
        };
        assert_eq!(va.incr("rl:1".into(), 2, 60_000).await.unwrap().value, 2);
        assert_eq!(vb.incr("rl:1".into(), 1, 60_000).await.unwrap().value, 1);
        let seen = va.live("rl:".into(), 10).await.unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!((seen[0].0.as_str(), seen[0].1.value), ("rl:1", 2));
        assert_eq!(va.reset("rl:".into()).await.unwrap(), 1);
        assert_eq!(vb.incr("rl:1".into(), 0, 60_000).await.unwrap().value, 1);
        assert!(matches!(
            va.incr("rl:1".into(), 1, 0).await,
            Err(CapabilityError::Invalid(_))
        ));
    }
}
