//! What the HTTP layer serves from: the process's [`AppState`] and, inside it, the [`Served`]
//! set — packs, route table, guard chain, access rules — that a reload replaces whole. Each
//! request takes the set once, when it arrives, and keeps it to its end, so requests in flight
//! when a reload lands finish on the set they began with while new ones see the new set.

use std::collections::BTreeMap;
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::access::Auth;
use super::client_ip::TrustedProxies;
use super::guard_chain::GuardChain;
use super::pack_calls::InProcess;
use super::routes::RouteTable;
use crate::config::Config;
use crate::reload::{PackSource, Reloader};
use crate::runtime::LoadedPack;
use crate::services::Services;

/// One configuration's packs and the rules they are served by.
pub struct Served {
    /// the configuration this set was built from
    pub config: Config,
    pub packs: Vec<Arc<LoadedPack>>,
    pub routes: Arc<RouteTable>,
    pub guards: GuardChain,
    pub auth: Auth,
    pub body_limit: usize,
    /// serves the packs' in-process calls (their capability holds it weakly)
    pub in_process: Arc<InProcess>,
    /// whose forwarding headers name the client
    pub trusted_proxies: TrustedProxies,
    /// what each pack was loaded from, so that a reload knows what changed
    pub sources: BTreeMap<String, PackSource>,
}

/// The process: the host services and the set served now.
pub struct AppState {
    pub services: Arc<Services>,
    served: ArcSwap<Served>,
    /// re-reads the configuration (SIGHUP, `POST /admin/reload`), one reload at a time
    pub reloader: Reloader,
}

impl AppState {
    /// Serving `served`: in-process calls and the catalogue are connected to it.
    pub fn new(services: Arc<Services>, served: Served, reloader: Reloader) -> Self {
        let served = Arc::new(served);
        let state = Self {
            services,
            served: ArcSwap::new(Arc::clone(&served)),
            reloader,
        };
        state.replace(served);
        state
    }

    /// The set served now; hold it for the whole request.
    pub fn served(&self) -> Arc<Served> {
        self.served.load_full()
    }

    /// Serve `next` from now on; requests holding the old set finish on it.
    pub fn replace(&self, next: Arc<Served>) {
        self.services.pack_calls.connect(Arc::downgrade(
            &(Arc::clone(&next.in_process) as Arc<dyn crate::capabilities::packs::PackCaller>),
        ));
        self.services.set_catalog(next.catalog());
        self.served.store(next);
    }
}

impl Served {
    /// The catalogue packs read through `host.routes()` / `host.packs()`.
    pub fn catalog(&self) -> crate::services::Catalog {
        use crate::services::{Catalog, PackEntry, RouteEntry};
        Catalog {
            routes: self
                .routes
                .entries()
                .into_iter()
                .map(|(path, method, t)| RouteEntry {
                    method,
                    path: path.to_string(),
                    summary: t.summary.clone(),
                    pack: t.owner_name.clone(),
                    access: t.access,
                })
                .collect(),
            packs: self
                .packs
                .iter()
                .map(|p| PackEntry {
                    name: p.manifest.name.clone(),
                    version: p.manifest.version.clone(),
                    description: p.manifest.description.clone(),
                })
                .collect(),
        }
    }
}
