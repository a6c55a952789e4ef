//! `host`: the live route table, the loaded packs, this pack's settings, the clock, secure
//! random bytes.

use crate::runtime::State;
use crate::runtime::bindings::valhalla::pack::host::{Host, PackInfo, RouteInfo};

/// The most `random-bytes` answers in one call.
pub const RANDOM_BYTES_MAX: usize = 4096;

impl Host for State {
    fn routes(&mut self) -> Vec<RouteInfo> {
        self.pack
            .services
            .catalog()
            .routes
            .iter()
            .map(|r| RouteInfo {
                method: r.method,
                path: r.path.clone(),
                summary: r.summary.clone(),
                pack: r.pack.clone(),
                access: r.access,
            })
            .collect()
    }

    fn packs(&mut self) -> Vec<PackInfo> {
        self.pack
            .services
            .catalog()
            .packs
            .iter()
            .map(|p| PackInfo {
                name: p.name.clone(),
                version: p.version.clone(),
                description: p.description.clone(),
            })
            .collect()
    }

    fn settings(&mut self) -> String {
        self.pack.settings_json.clone()
    }

    fn now_ms(&mut self) -> i64 {
        chrono::Utc::now().timestamp_millis()
    }

    fn now_us(&mut self) -> i64 {
        chrono::Utc::now().timestamp_micros()
    }

    /// At most [`RANDOM_BYTES_MAX`] bytes a call, so a pack cannot make the host allocate
    /// without bound; the SDK asks again for more. A failing OS source traps the call rather
    /// than answer predictable bytes.
    fn random_bytes(&mut self, len: u32) -> wasmtime::Result<Vec<u8>> {
        let mut bytes = vec![0u8; (len as usize).min(RANDOM_BYTES_MAX)];
        getrandom::fill(&mut bytes)
            .map_err(|e| wasmtime::format_err!("the secure random source failed: {e}"))?;
        Ok(bytes)
    }

    fn build_info(&mut self) -> String {
        self.pack.services.build_info.clone()
    }
}
