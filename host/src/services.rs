//! The host services every pack instance reaches through its capabilities: the database, the
//! shared cache, and the catalogue of loaded packs and routes (filled in once loading is done).

use std::sync::{Arc, OnceLock, Weak};

use crate::capabilities::cache::Cache;
use crate::capabilities::log_sink::LogSink;
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

/// What is loaded and served.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub routes: Vec<RouteEntry>,
    pub packs: Vec<PackEntry>,
}

pub struct Services {
    pub db: Db,
    pub cache: Cache,
    /// The outbound HTTP client packs share (grants are checked before it is used).
    pub http: reqwest::Client,
    /// Pack logs and audit events on their way to the system_log table, when that pack is on.
    pub log_sink: Option<LogSink>,
    pub catalog: OnceLock<Catalog>,
    /// The serving state, for in-process calls between packs (weak: the state owns the packs).
    pub app: OnceLock<Weak<crate::http::AppState>>,
    /// The host's version and build information as JSON.
    pub build_info: String,
    pub started_at: chrono::DateTime<chrono::Utc>,
}

impl Services {
    pub fn new(db: Db, log_sink: Option<LogSink>) -> Self {
        let started_at = chrono::Utc::now();
        let build_info = serde_json::json!({
            "name": "valhalla",
            "version": env!("CARGO_PKG_VERSION"),
            "git_commit": option_env!("VALHALLA_GIT_COMMIT"),
            "started_at": started_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "started_at_ms": started_at.timestamp_millis(),
            "rustc": option_env!("VALHALLA_RUSTC_VERSION"),
        })
        .to_string();
        Self {
            db,
            cache: Cache::default(),
            http: crate::capabilities::outbound_http::client(),
            log_sink,
            catalog: OnceLock::new(),
            app: OnceLock::new(),
            build_info,
            started_at,
        }
    }

    pub fn app(&self) -> Option<Arc<crate::http::AppState>> {
        self.app.get().and_then(Weak::upgrade)
    }

    pub fn catalog(&self) -> &Catalog {
        static EMPTY: OnceLock<Catalog> = OnceLock::new();
        self.catalog
            .get()
            .unwrap_or_else(|| EMPTY.get_or_init(Catalog::default))
    }
}
