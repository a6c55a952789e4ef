//! Admission to the instance pool: at most `runtime.max_instances` pack instances exist at
//! once; a call that finds them all in use waits up to `runtime.instance_wait_ms` for one to
//! be freed, then fails as busy (503 with `Retry-After`). Waiting callers queue in a fair
//! semaphore: no caller waits past the bound, and none is served out of turn.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The pool's places, shared by every pack (one engine, one pooling allocator).
#[derive(Clone, Debug)]
pub struct Slots {
    places: Arc<Semaphore>,
    wait: Duration,
    total: usize,
    refused: Arc<AtomicU64>,
}

/// A place in the pool, held by a store for its life (drop it after the store).
#[derive(Debug)]
pub struct Slot(#[allow(dead_code)] OwnedSemaphorePermit);

impl Slots {
    pub fn new(total: u32, wait: Duration) -> Self {
        let total = total as usize;
        Self {
            places: Arc::new(Semaphore::new(total)),
            wait,
            total,
            refused: Arc::default(),
        }
    }

    /// A place now if one is free, else the first freed within the wait; `None` past it.
    pub async fn acquire(&self) -> Option<Slot> {
        if let Ok(permit) = Arc::clone(&self.places).try_acquire_owned() {
            return Some(Slot(permit));
        }
        match tokio::time::timeout(self.wait, Arc::clone(&self.places).acquire_owned()).await {
            Ok(Ok(permit)) => Some(Slot(permit)),
            _ => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Places in use right now.
    pub fn in_use(&self) -> usize {
        self.total.saturating_sub(self.places.available_permits())
    }

    /// Calls refused so far because no place was freed within the wait.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    pub fn wait(&self) -> Duration {
        self.wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_pool_waits_for_a_place_then_refuses() {
        let slots = Slots::new(1, Duration::from_millis(50));
        let held = slots.acquire().await.expect("a free place");
        assert_eq!(slots.in_use(), 1);
        let started = std::time::Instant::now();
        assert!(slots.acquire().await.is_none(), "no place within the wait");
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(50), "{waited:?}");
        assert!(waited < Duration::from_secs(1), "{waited:?}");
        assert_eq!(slots.refused(), 1);
        // a place freed during the wait goes to the waiter
        let waiter = {
            let slots = slots.clone();
            tokio::spawn(async move { slots.acquire().await.is_some() })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        drop(held);
        assert!(waiter.await.unwrap());
        assert_eq!(slots.in_use(), 0);
    }
}
