//! The wasmtime engine: pooling allocator sized for the configured concurrency, pages kept
//! resident between instances (when the kernel can scan them), epoch interruption for
//! deadlines, and the ticker thread that advances the epoch.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::RuntimeError;
use crate::config::RuntimeConfig;

/// How often the epoch advances; deadlines are counted in these ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// The shared engine and the limits every store gets.
#[derive(Clone)]
pub struct RuntimeEngine {
    pub engine: Engine,
    pub memory_limit_bytes: usize,
    pub deadline: Duration,
    pub tick_deadline: Duration,
    /// the pool's places: a call waits a bounded time for one (`runtime.instance_wait_ms`)
    pub slots: super::admission::Slots,
}

impl RuntimeEngine {
    pub fn new(rt: &RuntimeConfig) -> Result<Self, RuntimeError> {
        let memory_limit_bytes = usize::try_from(rt.memory_limit_mib * 1024 * 1024)
            .map_err(|_| RuntimeError::Engine("memory limit too large".into()))?;
        let instances = rt.max_instances;
        let pagemap = kernel_supports_pagemap_scan();

        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(instances)
            // a Rust pack has ~3 core instances, 1-2 memories and tables
            .total_core_instances(instances * 4)
            .total_memories(instances * 2)
            .total_tables(instances * 2)
            .total_stacks(instances)
            .max_core_instances_per_component(16)
            .max_memories_per_component(4)
            .max_tables_per_component(8)
            .max_memory_size(memory_limit_bytes);
        if pagemap {
            // Without pagemap_scan, keep-resident makes every drop clear the whole kept region:
            // slower than the default. With it, only dirty pages are reset.
            pool.pagemap_scan(Enabled::Auto)
                .linear_memory_keep_resident(2 << 20)
                .table_keep_resident(1 << 20);
        }

        let mut config = Config::new();
        config
            .epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
            .memory_init_cow(false)
            .parallel_compilation(true);
        let engine = Engine::new(&config).map_err(|e| RuntimeError::Engine(e.to_string()))?;
        tracing::info!(
            max_instances = instances,
            memory_limit_mib = rt.memory_limit_mib,
            keep_resident = pagemap,
            "wasm engine ready ({})",
            if pagemap {
                "pagemap_scan: pool slots stay resident"
            } else {
                "kernel < 6.7: default pooling reset"
            }
        );
        Ok(Self {
            engine,
            memory_limit_bytes,
            deadline: Duration::from_millis(rt.deadline_ms),
            tick_deadline: Duration::from_millis(rt.tick_deadline_ms),
            slots: super::admission::Slots::new(
                instances,
                Duration::from_millis(rt.instance_wait_ms),
            ),
        })
    }

    /// The same engine and memory pool with `rt`'s call and tick deadlines (a reload may
    /// change those; the pool's size and limits need a restart).
    pub fn with_deadlines(&self, rt: &RuntimeConfig) -> Self {
        Self {
            deadline: Duration::from_millis(rt.deadline_ms),
            tick_deadline: Duration::from_millis(rt.tick_deadline_ms),
            ..self.clone()
        }
    }

    /// Epoch ticks for `deadline` (at least one).
    pub fn ticks(deadline: Duration) -> u64 {
        (deadline.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64 + 1
    }
}

/// `PAGEMAP_SCAN` arrived in Linux 6.7.
fn kernel_supports_pagemap_scan() -> bool {
    let Ok(release) = std::fs::read_to_string("/proc/sys/kernel/osrelease") else {
        return false;
    };
    let mut parts = release.trim().split(['.', '-']);
    let major: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let minor: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (major, minor) >= (6, 7)
}

/// The thread that advances the engine's epoch; stops when dropped.
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl EpochTicker {
    pub fn start(engine: Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = std::thread::Builder::new()
            .name("valhalla-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .ok();
        Self { stop, handle }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
