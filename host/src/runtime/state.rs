//! What a store carries: the pack's shared context (its [`Capabilities`]), this call's
//! context (request id, principal, depth, deadline), the memory limiter and a sandboxed WASI
//! context (no files, no network, no env). Each capability's imports see a view of the first
//! two (`capabilities::add_to_linker`).

use std::sync::Arc;

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::Principal;
use crate::capabilities::Capabilities;

/// Everything about one loaded pack that its instances share.
pub struct PackContext {
    pub name: String,
    /// overrides the engine's call deadline for this pack
    pub deadline: Option<std::time::Duration>,
    /// what its imports reach, one field per capability
    pub capabilities: Capabilities,
}

/// Who and what one call is for.
#[derive(Debug, Clone, Default)]
pub struct CallContext {
    pub request_id: String,
    pub principal: Option<Principal>,
    /// how many in-process pack calls deep this call is
    pub depth: u8,
}

/// Caps linear memory; remembers a refusal so a trap can be reported as out-of-memory.
pub struct MemoryLimiter {
    pub limit: usize,
    pub exceeded: bool,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let ok = desired <= self.limit;
        self.exceeded |= !ok;
        Ok(ok)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1 << 20)
    }
}

/// The data of one store (one call).
pub struct State {
    pub pack: Arc<PackContext>,
    pub call: CallContext,
    /// when this call's deadline passes; its statements stop then too
    pub deadline: std::time::Instant,
    pub limiter: MemoryLimiter,
    /// what this call read and wrote in its cache, and the decision it memoized
    pub cache_call: crate::capabilities::cache::CallCache,
    /// built on the guest's first WASI call: most calls make none, and building one costs
    /// a dozen allocations and seeding two random generators
    wasi: Option<WasiCtx>,
    table: ResourceTable,
}

/// No preopened directories, no environment, no sockets: std's WASI imports resolve, but
/// reach nothing.
fn sandboxed_wasi() -> WasiCtx {
    WasiCtx::builder()
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .build()
}

impl State {
    pub fn new(
        pack: Arc<PackContext>,
        call: CallContext,
        memory_limit: usize,
        deadline: std::time::Instant,
    ) -> Self {
        Self {
            pack,
            call,
            deadline,
            limiter: MemoryLimiter {
                limit: memory_limit,
                exceeded: false,
            },
            cache_call: Default::default(),
            wasi: None,
            table: ResourceTable::new(),
        }
    }
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: self.wasi.get_or_insert_with(sandboxed_wasi),
            table: &mut self.table,
        }
    }
}
