//! The host services the capabilities are built from: the database, the shared cache, the
//! outbound client, the system log's sink, the catalogue of loaded packs and routes (replaced
//! whole when loading or a reload is done) and the way to in-process pack calls (connected once serving).

use std::sync::{Arc, RwLock};

use arc_swap::ArcSwapOption;

use crate::capabilities::cache::Cache;
use crate::capabilities::counters::SharedCounters;
use crate::capabilities::log_sink::LogSink;
use crate::capabilities::packs::PackCalls;
use crate::runtime::bindings::{Access, Method};
use crate::storage::Db;

/// One route as the host's route table lists it.
#[derive(Debug, Clone)]
pub struct RouteEntry {
    pub method: Method,
    pub path: String,
    pub summary: String,
    /// the owning pack, or `host`
    pub pack: String,
    pub access: Access,
}

/// One loaded pack.
#[derive(Debug, Clone)]
pub struct PackEntry {
    pub name: String,
    pub version: String,
    pub description: String,
}

/// The system log's writer while the system_log pack is on: every pack's `log` reads it at
/// each record, so a reload that enables or disables that pack reaches them all.
pub type SinkSlot = Arc<ArcSwapOption<LogSink>>;

/// The catalogue packs read through the `host` import, replaced whole by a reload.
pub type SharedCatalog = Arc<RwLock<Arc<Catalog>>>;

/// What is loaded and served.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub routes: Vec<RouteEntry>,
    pub packs: Vec<PackEntry>,
}

pub struct Services {
    pub db: Db,
    pub cache: Arc<Cache>,
    /// Counters every replica counts together (rate limits).
    pub counters: Arc<SharedCounters>,
    /// The outbound HTTP client packs share (grants are checked before it is used).
    pub http: reqwest::Client,
    /// Pack logs and audit events on their way to the system_log table, when that pack is on.
    pub log_sink: SinkSlot,
    pub catalog: SharedCatalog,
    /// The way to other packs' routes for in-process calls, connected once serving.
    pub pack_calls: PackCalls,
    /// The host's version and build information as JSON.
    pub build_info: Arc<str>,
    /// This process's id among the replicas (in `build_info` too): who holds a lease.
    pub instance: Arc<str>,
    pub started_at: chrono::DateTime<chrono::Utc>,
}

impl Services {
    pub fn new(db: Db, log_sink: Option<LogSink>) -> Self {
        let started_at = chrono::Utc::now();
        let instance = uuid::Uuid::new_v4().to_string();
        let build_info = build_info(started_at, &instance);
        let cache: Arc<Cache> = Arc::default();
        let counters = Arc::new(match &db {
            Db::Postgres(pool) => SharedCounters::postgres(Arc::clone(&cache), pool.clone()),
            Db::Sqlite(_) => SharedCounters::local(Arc::clone(&cache)),
        });
        Self {
            db,
            cache,
            counters,
            http: crate::capabilities::outbound_http::client(),
            log_sink: Arc::new(ArcSwapOption::from(log_sink.map(Arc::new))),
            catalog: Arc::default(),
            pack_calls: PackCalls::default(),
            build_info: Arc::from(build_info),
            instance: Arc::from(instance),
            started_at,
        }
    }

    /// Replace the catalogue (loading done, or a reload landed).
    pub fn set_catalog(&self, catalog: Catalog) {
        let next = Arc::new(catalog);
        match self.catalog.write() {
            Ok(mut c) => *c = next,
            Err(poisoned) => *poisoned.into_inner() = next,
        }
    }
}

/// The host's version and build information as JSON, with a random `instance` id of this
/// process (who holds a job's lease, among the replicas and restarts).
fn build_info(started_at: chrono::DateTime<chrono::Utc>, instance: &str) -> String {
    serde_json::json!({
        "name": "valhalla",
        "version": env!("CARGO_PKG_VERSION"),
        "git_commit": option_env!("VALHALLA_GIT_COMMIT"),
        "started_at": started_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "started_at_ms": started_at.timestamp_millis(),
        "rustc": option_env!("VALHALLA_RUSTC_VERSION"),
        "instance": instance,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance_of(build_info: &str) -> String {
        let info: serde_json::Value = serde_json::from_str(build_info).unwrap();
        info["instance"].as_str().unwrap().to_string()
    }

    #[test]
    fn build_info_names_the_instance_that_holds_leases() {
        let info = build_info(chrono::Utc::now(), "replica-a");
        assert_eq!(instance_of(&info), "replica-a");
    }

    #[tokio::test]
    async fn every_process_start_has_an_instance_id_of_its_own() {
        let db = || Db::connect_lazy("sqlite::memory:", 1).unwrap();
        let (a, b) = (Services::new(db(), None), Services::new(db(), None));
        assert_eq!(
            uuid::Uuid::parse_str(&a.instance)
                .unwrap()
                .get_version_num(),
            4
        );
        assert_ne!(a.instance, b.instance);
        assert_eq!(instance_of(&a.build_info), &*a.instance);
    }
}
