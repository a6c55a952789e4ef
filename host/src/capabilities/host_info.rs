//! `host`: the live route table, the loaded packs, this pack's settings, the clock, secure
//! random bytes.

use std::sync::Arc;

use wasmtime::component::{HasData, Linker};

use crate::runtime::bindings::valhalla::pack::host::{self, Host, PackInfo, RouteInfo};
use crate::services::{Catalog, SharedCatalog};

/// The most `random-bytes` answers in one call.
pub const RANDOM_BYTES_MAX: usize = 4096;

/// One pack's `host`: its settings, and what the host tells every pack.
pub struct HostInfo {
    /// `[packs.<name>.settings]` as a JSON object
    settings_json: String,
    /// what is served now (empty until loading is done)
    catalog: SharedCatalog,
    build_info: Arc<str>,
}

impl HostInfo {
    pub fn new(settings_json: String, catalog: SharedCatalog, build_info: Arc<str>) -> Self {
        Self {
            settings_json,
            catalog,
            build_info,
        }
    }

    /// The catalogue as it is now (a reload replaces it whole).
    fn catalog(&self) -> Arc<Catalog> {
        match self.catalog.read() {
            Ok(c) => Arc::clone(&c),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }
}

/// What one call's `host` imports see.
pub struct HostInfoView<'a> {
    pub host: &'a HostInfo,
}

struct HostInfoData;

impl HasData for HostInfoData {
    type Data<'a> = HostInfoView<'a>;
}

/// Link `host` for stores whose data `get` views.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> HostInfoView<'_>,
) -> wasmtime::Result<()> {
    host::add_to_linker::<T, HostInfoData>(linker, get)
}

impl Host for HostInfoView<'_> {
    fn routes(&mut self) -> Vec<RouteInfo> {
        let catalog = self.host.catalog();
        catalog
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
        let catalog = self.host.catalog();
        catalog
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
        self.host.settings_json.clone()
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
        self.host.build_info.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::bindings::{Access, Method};
    use crate::services::{PackEntry, RouteEntry};

    #[test]
    fn settings_are_the_packs_own_and_the_catalogue_is_what_is_served_now() {
        let catalog = SharedCatalog::default();
        let info = HostInfo::new(r#"{"a":1}"#.into(), Arc::clone(&catalog), Arc::from("{}"));
        let mut view = HostInfoView { host: &info };
        assert_eq!(view.settings(), r#"{"a":1}"#);
        assert!(view.routes().is_empty() && view.packs().is_empty());
        *catalog.write().unwrap() = Arc::new(Catalog {
            routes: vec![RouteEntry {
                method: Method::Get,
                path: "/x".into(),
                summary: String::new(),
                pack: "p".into(),
                access: Access::Read,
            }],
            packs: vec![PackEntry {
                name: "p".into(),
                version: "1".into(),
                description: String::new(),
            }],
        });
        assert_eq!(view.routes()[0].path, "/x");
        assert_eq!(view.packs()[0].name, "p");
    }

    #[test]
    fn random_bytes_are_capped() {
        let info = HostInfo::new("{}".into(), Arc::default(), Arc::from("{}"));
        let mut view = HostInfoView { host: &info };
        assert_eq!(view.random_bytes(16).unwrap().len(), 16);
        assert_eq!(view.random_bytes(u32::MAX).unwrap().len(), RANDOM_BYTES_MAX);
    }
}
