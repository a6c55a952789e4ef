//! Host capabilities, one module per WIT import. Each owns its grant (parsed once, at
//! startup: [`grants`]), the per-pack part of its state, the view one call's imports see, and
//! its `add_to_linker` (wasmtime's `wasi-config` pattern: a borrowed view and `HasData`).
//! [`Capabilities`] is one pack's set; [`add_to_linker`] links them all for a [`State`].
//!
//! | module | import | grant |
//! |---|---|---|
//! | [`store`] | `store` | the pack's own tables (its migrations) |
//! | [`cache`] | `cache` | the pack's own key namespace |
//! | [`counters`] | `counters` | the pack's own key namespace (counted across replicas) |
//! | [`log`] | `log` | — |
//! | [`host_info`] | `host` | — (its own settings) |
//! | [`packs`] | `packs` | `grants.packs` ([`packs::PacksGrant`]) |
//! | [`outbound_http`] | `outbound-http` | `grants.outbound` ([`outbound_grant::OutboundGrant`]) |
//! | [`artefacts`] | `artefacts` | `grants.artefacts` (a directory under `runtime.artefacts_dir`) |
//! | [`outbound_mail`] | `outbound-mail` | `grants.smtp` ([`outbound_mail_grant::SmtpGrant`]) |

pub mod artefacts;
pub mod cache;
pub mod cache_bus;
pub mod counters;
pub mod grants;
pub mod host_info;
pub mod log;
pub mod log_sink;
pub mod outbound_grant;
pub mod outbound_http;
pub mod outbound_mail;
pub mod outbound_mail_grant;
pub mod packs;
mod shared_cache;
mod shared_counters;
pub mod store;

use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker};

pub use grants::PackGrants;

use crate::runtime::State;
use crate::runtime::bindings::valhalla::pack::types;
use crate::services::Services;
use crate::storage::PackTables;

/// What one loaded pack may reach, one field per capability.
pub struct Capabilities {
    pub store: store::Store,
    pub cache: cache::PackCache,
    pub counters: counters::PackCounters,
    pub log: log::PackLog,
    pub host: host_info::HostInfo,
    pub packs: packs::PackCalling,
    pub outbound: outbound_http::OutboundHttp,
    pub artefacts: artefacts::Artefacts,
    pub mail: outbound_mail::OutboundMail,
}

impl Capabilities {
    /// Pack `name`'s capabilities: its `grants`, `settings_json`, the tables of its
    /// `sandbox`, the host `services` they reach, and `artefacts_root`
    /// (`runtime.artefacts_dir`, resolved) for an `artefacts` grant.
    pub fn new(
        name: &str,
        settings_json: String,
        grants: PackGrants,
        sandbox: Arc<PackTables>,
        services: &Services,
        artefacts_root: &std::path::Path,
    ) -> Self {
        Self {
            store: store::Store::new(sandbox, services.db.clone()),
            cache: cache::PackCache::new(name, Arc::clone(&services.cache)),
            counters: counters::PackCounters::new(name, Arc::clone(&services.counters)),
            log: log::PackLog::new(name, Arc::clone(&services.log_sink)),
            host: host_info::HostInfo::new(
                settings_json,
                Arc::clone(&services.catalog),
                Arc::clone(&services.build_info),
            ),
            packs: packs::PackCalling::new(name, grants.packs, services.pack_calls.clone()),
            outbound: outbound_http::OutboundHttp::new(
                name,
                grants.outbound,
                services.http.clone(),
            ),
            artefacts: artefacts::Artefacts::new(name, artefacts_root, grants.artefacts),
            mail: outbound_mail::OutboundMail::new(name, grants.smtp),
        }
    }
}

/// `types` has no functions; it is linked for the world's sake.
impl types::Host for State {}

/// Link every capability for a pack's [`State`]: each import sees its own view.
pub fn add_to_linker(linker: &mut Linker<State>) -> wasmtime::Result<()> {
    types::add_to_linker::<State, HasSelf<State>>(linker, |s| s)?;
    store::add_to_linker(linker, |s| store::StoreView {
        store: &s.pack.capabilities.store,
        call: &s.call,
        deadline: s.deadline,
    })?;
    cache::add_to_linker(linker, |s| cache::CacheView {
        cache: &s.pack.capabilities.cache,
        call: &mut s.cache_call,
    })?;
    counters::add_to_linker(linker, |s| counters::CountersView {
        counters: &s.pack.capabilities.counters,
        deadline: s.deadline,
    })?;
    log::add_to_linker(linker, |s| log::LogView {
        log: &s.pack.capabilities.log,
        call: &s.call,
    })?;
    host_info::add_to_linker(linker, |s| host_info::HostInfoView {
        host: &s.pack.capabilities.host,
    })?;
    packs::add_to_linker(linker, |s| packs::PacksView {
        packs: &s.pack.capabilities.packs,
        call: &s.call,
    })?;
    outbound_http::add_to_linker(linker, |s| outbound_http::OutboundHttpView {
        http: &s.pack.capabilities.outbound,
        call: &s.call,
    })?;
    artefacts::add_to_linker(linker, |s| artefacts::ArtefactsView {
        artefacts: &s.pack.capabilities.artefacts,
        call: &s.call,
    })?;
    outbound_mail::add_to_linker(linker, |s| outbound_mail::OutboundMailView {
        mail: &s.pack.capabilities.mail,
        call: &s.call,
    })
}
