//! Reload without downtime: re-read config.toml (SIGHUP or `POST /admin/reload`), build the
//! new [`Served`] set beside the old one — the migrations of newly enabled packs applied,
//! changed packs loaded anew, unchanged ones kept as they are — and swap it in whole. Requests
//! in flight finish on the set they began with; new ones see the new set. A configuration that
//! does not load (a parse error, a missing component, a route conflict, a failing migration)
//! is rejected with its reason, and the old set keeps serving.
//!
//! What a reload cannot change — the listener, the database and the engine's memory pool — is
//! kept as it runs and named in the answer's `restart_required`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use crate::app::{self, StartupError};
use crate::capabilities::PackGrants;
use crate::capabilities::log_sink::LogSink;
use crate::config::{Config, ConfigError, PackConfig};
use crate::http::access::Auth;
use crate::http::guard_chain::GuardChain;
use crate::http::{AppState, InProcess, Served};
use crate::runtime::scheduler::Scheduler;
use crate::runtime::{LoadedPack, RuntimeEngine, RuntimeError};
use crate::services::Services;

/// Why a reload was refused (the old set keeps serving).
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Load(#[from] StartupError),
}

/// What a pack was loaded from: a reload loads it anew when any of this differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackSource {
    /// SHA-256 of the component file
    digest: [u8; 32],
    /// its `[packs.<name>]` block (settings, grants, deadline) and the default deadlines
    config: String,
    /// the tables its migrations create
    tables: Vec<String>,
}

impl PackSource {
    async fn of(
        config: &Config,
        name: &str,
        pack: &PackConfig,
        tables: &[String],
    ) -> Result<Self, StartupError> {
        let path = config.component_path(name);
        let read = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || std::fs::read(&path).map(|b| Sha256::digest(&b)))
                .await
                .map_err(|e| RuntimeError::Engine(format!("read task failed: {e}")))?
        };
        let digest = read.map_err(|source| RuntimeError::Read { path, source })?;
        Ok(Self {
            digest: digest.into(),
            config: format!(
                "{pack:?} deadlines {} {}",
                config.runtime.deadline_ms, config.runtime.tick_deadline_ms
            ),
            tables: tables.to_vec(),
        })
    }
}

/// What a reload did, pack by pack.
#[derive(Debug, Default, Clone, Serialize)]
pub struct ReloadReport {
    /// newly enabled
    pub loaded: Vec<String>,
    /// changed component, settings, grants or tables: a fresh load
    pub reloaded: Vec<String>,
    /// disabled or removed
    pub unloaded: Vec<String>,
    pub unchanged: Vec<String>,
    /// keys that differ in the file but take effect only on a restart
    pub restart_required: Vec<String>,
}

impl ReloadReport {
    /// Its JSON Schema, for the OpenAPI document.
    pub fn schema() -> Value {
        let names = json!({ "type": "array", "items": { "type": "string" } });
        json!({
            "type": "object",
            "required": ["status", "loaded", "reloaded", "unloaded", "unchanged", "restart_required"],
            "properties": {
                "status": { "type": "string", "enum": ["reloaded"] },
                "loaded": names, "reloaded": names, "unloaded": names, "unchanged": names,
                "restart_required": names,
            },
        })
    }
}

/// Re-reads the configuration, one reload at a time.
pub struct Reloader {
    engine: RuntimeEngine,
    /// the tickers, once serving (the lock also serialises reloads)
    scheduler: Mutex<Option<Scheduler>>,
}

impl Reloader {
    pub fn new(engine: RuntimeEngine) -> Self {
        Self {
            engine,
            scheduler: Mutex::new(None),
        }
    }

    /// Serving has begun: these tickers follow every reload from now on.
    pub async fn scheduling(&self, scheduler: Scheduler) {
        *self.scheduler.lock().await = Some(scheduler);
    }

    /// Serving is over: the tickers, to wait for.
    pub async fn take_scheduler(&self) -> Option<Scheduler> {
        self.scheduler.lock().await.take()
    }
}

/// The served set of `config`, keeping from `previous` every pack whose source is unchanged.
pub async fn build_served(
    config: Config,
    engine: &RuntimeEngine,
    services: &Arc<Services>,
    previous: Option<&Served>,
) -> Result<(Served, ReloadReport), StartupError> {
    let grants = PackGrants::parse_all(&config)?;
    let owned = app::migrate(&config, &services.db).await?;
    let mut sources = BTreeMap::new();
    for (name, pack) in config.enabled_packs() {
        let tables = owned.get(name).map(Vec::as_slice).unwrap_or_default();
        sources.insert(
            name.clone(),
            PackSource::of(&config, name, pack, tables).await?,
        );
    }
    let mut report = ReloadReport::default();
    let mut kept: HashMap<String, Arc<LoadedPack>> = HashMap::new();
    let mut to_load = Vec::new();
    for (name, source) in &sources {
        let before = previous.and_then(|p| {
            let pack = p.packs.iter().find(|x| x.name() == name)?;
            Some((p.sources.get(name)?, pack))
        });
        match before {
            Some((was, pack)) if was == source => {
                kept.insert(name.clone(), Arc::clone(pack));
                report.unchanged.push(name.clone());
            }
            Some(_) => {
                to_load.push(name.clone());
                report.reloaded.push(name.clone());
            }
            None => {
                to_load.push(name.clone());
                report.loaded.push(name.clone());
            }
        }
    }
    if let Some(p) = previous {
        report.unloaded = p
            .sources
            .keys()
            .filter(|n| !sources.contains_key(*n))
            .cloned()
            .collect();
    }
    let sandboxes = app::sandbox_packs(&config, &services.db, &owned, &to_load).await?;
    let loaded = app::load_packs(&config, engine, services, &grants, &sandboxes, &to_load).await?;
    let mut by_name: HashMap<String, Arc<LoadedPack>> = loaded
        .into_iter()
        .map(|p| (p.name().to_string(), p))
        .collect();
    by_name.extend(kept);
    let packs: Vec<Arc<LoadedPack>> = config
        .enabled_packs()
        .filter_map(|(name, _)| by_name.remove(name))
        .collect();
    let routes = Arc::new(app::build_routes(&packs)?);
    let guards = GuardChain::build(&packs, &config.server.guard_order);
    let in_process = Arc::new(InProcess::new(packs.clone(), Arc::clone(&routes)));
    let served = Served {
        auth: Auth::new(&config.auth),
        body_limit: config.server.body_limit_bytes,
        trusted_proxies: config.trusted_proxies()?,
        config,
        packs,
        routes,
        guards,
        in_process,
        sources,
    };
    Ok((served, report))
}

/// Re-read the file the running configuration came from and serve what it says.
pub async fn reload(app: &AppState) -> Result<ReloadReport, ReloadError> {
    let started = std::time::Instant::now();
    let result = reload_now(app).await;
    match &result {
        Ok(report) => {
            crate::metrics::reloaded(true);
            tracing::info!(
                loaded = ?report.loaded,
                reloaded = ?report.reloaded,
                unloaded = ?report.unloaded,
                restart_required = ?report.restart_required,
                ms = started.elapsed().as_millis() as u64,
                "configuration reloaded"
            );
        }
        Err(e) => {
            crate::metrics::reloaded(false);
            tracing::error!(reason = %e, "reload rejected: the running configuration keeps serving");
        }
    }
    result
}

async fn reload_now(app: &AppState) -> Result<ReloadReport, ReloadError> {
    let mut scheduler = app.reloader.scheduler.lock().await;
    let current = app.served();
    let running = &current.config;
    let mut next = Config::load(&running.source)?;
    if let Some(bind) = &running.bind_override {
        next.override_bind(bind.clone());
    }
    let restart_required = keep_what_needs_a_restart(running, &mut next);
    let engine = app.reloader.engine.with_deadlines(&next.runtime);
    let (served, mut report) = build_served(next, &engine, &app.services, Some(&current)).await?;
    report.restart_required = restart_required;
    for name in report.reloaded.iter().chain(&report.unloaded) {
        app.services
            .cache
            .delete_prefix(&crate::capabilities::cache::namespace(name));
    }
    let logged = served.packs.iter().any(|p| p.name() == "system_log");
    if logged && app.services.log_sink.load().is_none() {
        // its table exists now (its migrations ran): every pack's log reaches it from here on
        let sink = LogSink::start(app.services.db.clone());
        app.services.log_sink.store(Some(Arc::new(sink)));
    }
    let served = Arc::new(served);
    app.replace(Arc::clone(&served));
    if !logged && let Some(sink) = app.services.log_sink.swap(None) {
        sink.flush().await;
    }
    if let Some(scheduler) = scheduler.as_mut() {
        scheduler.sync(&served.packs);
    }
    Ok(report)
}

/// Set back in `next` what only a restart can change, answering the keys that differed.
fn keep_what_needs_a_restart(running: &Config, next: &mut Config) -> Vec<String> {
    let mut differ = Vec::new();
    macro_rules! keep {
        ($($section:ident . $key:ident),* $(,)?) => {$(
            if format!("{:?}", running.$section.$key) != format!("{:?}", next.$section.$key) {
                differ.push(concat!(stringify!($section), ".", stringify!($key)).to_string());
                next.$section.$key = running.$section.$key.clone();
            }
        )*};
    }
    keep!(
        server.bind,
        server.shutdown_grace_seconds,
        database.url,
        database.max_connections,
        database.pack_roles,
        database.pack_max_connections,
        runtime.memory_limit_mib,
        runtime.max_instances,
    );
    differ
}
