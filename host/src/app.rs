//! Startup and serving: config → grants → database → migrations → packs → route table →
//! listener (the pack set is built by [`crate::reload`], which a reload reuses), SIGHUP, and
//! graceful shutdown. Tests build the same `Application` on port 0.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::capabilities::cache_bus::CacheBus;
use crate::capabilities::log_sink::LogSink;
use crate::capabilities::{Capabilities, PackGrants};
use crate::config::Config;
use crate::http::guard_chain::GuardChain;
use crate::http::{AppState, RouteConflict, RouteTable, router};
use crate::reload::{Reloader, build_served};
use crate::runtime::bindings::{Access, Method};
use crate::runtime::scheduler::Scheduler;
use crate::runtime::tick_lease::TickLeases;
use crate::runtime::{
    EpochTicker, LoadedPack, PackContext, RuntimeEngine, RuntimeError, load_component,
};
use crate::services::Services;
use crate::storage::migrations::{self, MigrationError};
use crate::storage::table_access::created_tables;
use crate::storage::{Db, PackRoles, PackTables, RoleError, StorageError};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("database {url}: {source}")]
    Database { url: String, source: StorageError },
    #[error(transparent)]
    Migration(#[from] MigrationError),
    #[error(transparent)]
    PackRoles(#[from] RoleError),
    #[error("{path}: {message}")]
    MigrationSql { path: String, message: String },
    #[error("table `{table}` is created by the migrations of both `{first}` and `{second}`")]
    SharedTable {
        table: String,
        first: String,
        second: String,
    },
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("{path}: pack `{configured}`: the component says it is `{actual}` (unknown pack)")]
    UnknownPack {
        path: String,
        configured: String,
        actual: String,
    },
    #[error(transparent)]
    Routes(#[from] RouteConflict),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("server error: {0}")]
    Serve(std::io::Error),
}

/// The URL with any password replaced, for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Connect to the configured database.
pub async fn connect(config: &Config) -> Result<Db, StartupError> {
    let limits = crate::storage::DbLimits::of(&config.database);
    Db::connect_with(
        &config.database.url,
        config.database.max_connections,
        limits,
    )
    .await
    .map_err(|source| StartupError::Database {
        url: redact_url(&config.database.url),
        source,
    })
}

/// Apply the migrations of every enabled pack; answer the tables each pack owns.
pub async fn migrate(
    config: &Config,
    db: &Db,
) -> Result<HashMap<String, Vec<String>>, StartupError> {
    let dir = config.resolve(&config.runtime.migrations_dir);
    let mut plans = Vec::new();
    let mut owner_of: HashMap<String, String> = HashMap::new();
    let mut owned: HashMap<String, Vec<String>> = HashMap::new();
    for (name, _) in config.enabled_packs() {
        let found = migrations::discover(&dir, name)?;
        let mut tables = Vec::new();
        for m in &found {
            let created = created_tables(&m.sql).map_err(|message| StartupError::MigrationSql {
                path: m.path.display().to_string(),
                message: format!("migration SQL must parse as portable SQL: {message}"),
            })?;
            for t in created {
                if t.starts_with("valhalla_") {
                    return Err(StartupError::MigrationSql {
                        path: m.path.display().to_string(),
                        message: format!("table `{t}`: the valhalla_ prefix is the host's"),
                    });
                }
                if let Some(first) = owner_of.insert(t.clone(), name.clone())
                    && first != *name
                {
                    return Err(StartupError::SharedTable {
                        table: t,
                        first,
                        second: name.clone(),
                    });
                }
                tables.push(t);
            }
        }
        owned.insert(name.clone(), tables);
        plans.push((name.clone(), found));
    }
    let db_err = |source| StartupError::Database {
        url: redact_url(&config.database.url),
        source,
    };
    let lock = migrations::lock(db).await.map_err(db_err)?;
    let result = async {
        migrations::ensure_table(db).await?;
        if let Db::Postgres(pool) = db {
            crate::runtime::tick_lease::ensure_table(pool)
                .await
                .map_err(|e| MigrationError::Storage(e.into()))?;
            crate::capabilities::counters::ensure_table(pool)
                .await
                .map_err(|e| MigrationError::Storage(e.into()))?;
        }
        for (name, found) in &plans {
            migrations::apply(db, name, &dir, found).await?;
        }
        Ok::<_, MigrationError>(())
    }
    .await;
    migrations::unlock(lock).await;
    result?;
    Ok(owned)
}

/// The table sandbox of each enabled pack named in `names`; on PostgreSQL its role and pool
/// too (see `storage::pg_sandbox`), unless `database.pack_roles` is off.
pub async fn sandbox_packs(
    config: &Config,
    db: &Db,
    owned: &HashMap<String, Vec<String>>,
    names: &[String],
) -> Result<HashMap<String, Arc<PackTables>>, StartupError> {
    let sandboxes: HashMap<String, Arc<PackTables>> = config
        .enabled_packs()
        .filter(|(name, _)| names.contains(name))
        .map(|(name, _)| {
            let tables = owned.get(name).cloned().unwrap_or_default();
            (name.clone(), Arc::new(PackTables::new(name, tables)))
        })
        .collect();
    let Db::Postgres(host) = db else {
        return Ok(sandboxes);
    };
    if !config.database.pack_roles {
        tracing::warn!(
            "database.pack_roles is off: on PostgreSQL the table sandbox is only the host's SQL \
             check; every pack's SQL runs as the host's database user"
        );
        return Ok(sandboxes);
    }
    let packs: Vec<PackRoles<'_>> = config
        .enabled_packs()
        .filter(|(name, _)| names.contains(name))
        .filter_map(|(name, pack)| {
            Some(PackRoles {
                tables: sandboxes.get(name)?,
                deadline: Duration::from_millis(
                    pack.deadline_ms.unwrap_or(config.runtime.deadline_ms),
                ),
            })
        })
        .collect();
    // replicas starting together: one creates the roles and grants at a time (under the
    // migrations' advisory lock), the others then find them
    let lock = migrations::lock(db)
        .await
        .map_err(|source| StartupError::Database {
            url: redact_url(&config.database.url),
            source,
        })?;
    let ensured = PackRoles::ensure(
        host,
        &config.database.url,
        &packs,
        config.database.pack_max_connections,
    )
    .await;
    migrations::unlock(lock).await;
    ensured?;
    Ok(sandboxes)
}

/// Compile (or load from cache) and link each enabled pack named in `names` with its
/// capabilities (its `grants`, parsed by [`PackGrants::parse_all`]), reading its manifest.
pub async fn load_packs(
    config: &Config,
    engine: &RuntimeEngine,
    services: &Arc<Services>,
    grants: &BTreeMap<String, PackGrants>,
    sandboxes: &HashMap<String, Arc<PackTables>>,
    names: &[String],
) -> Result<Vec<Arc<LoadedPack>>, StartupError> {
    let cache_dir = config.resolve(&config.runtime.cache_dir);
    let artefacts_root = config.resolve(&config.runtime.artefacts_dir);
    let mut packs = Vec::new();
    for (name, pack) in config.enabled_packs().filter(|(n, _)| names.contains(n)) {
        let path = config.component_path(name);
        let component = {
            let (engine, path, cache_dir) =
                (engine.engine.clone(), path.clone(), cache_dir.clone());
            tokio::task::spawn_blocking(move || load_component(&engine, &path, &cache_dir))
                .await
                .map_err(|e| RuntimeError::Engine(format!("compile task failed: {e}")))??
        };
        let settings_json = serde_json::to_string(&pack.settings).unwrap_or_else(|_| "{}".into());
        let sandbox = sandboxes
            .get(name)
            .cloned()
            .unwrap_or_else(|| Arc::new(PackTables::new(name, [])));
        let grants = grants.get(name).cloned().unwrap_or_default();
        let ctx = Arc::new(PackContext {
            name: name.clone(),
            deadline: pack.deadline_ms.map(Duration::from_millis),
            capabilities: Capabilities::new(
                name,
                settings_json,
                grants,
                sandbox,
                services,
                &artefacts_root,
            ),
        });
        let loaded = LoadedPack::load(engine, &component, ctx).await?;
        if loaded.manifest.name != *name {
            return Err(StartupError::UnknownPack {
                path: config.source.display().to_string(),
                configured: name.clone(),
                actual: loaded.manifest.name.clone(),
            });
        }
        tracing::info!(pack = %name, version = %loaded.manifest.version, routes = loaded.manifest.routes.len(), "pack loaded");
        packs.push(Arc::new(loaded));
    }
    Ok(packs)
}

/// The route table: the host's routes, then every pack's.
pub fn build_routes(packs: &[Arc<LoadedPack>]) -> Result<RouteTable, RouteConflict> {
    use crate::http::routes::{HostRoute, Owner, Target};
    let mut table = RouteTable::default();
    let host = |route, summary: &str| Target {
        owner: Owner::Host(route),
        owner_name: "host".into(),
        access: Access::Public,
        summary: summary.into(),
    };
    for (path, route, summary) in [
        ("/system/health/live", HostRoute::Live, "Liveness probe"),
        ("/system/health/ready", HostRoute::Ready, "Readiness probe"),
        // seed 004's paths, kept for its clients
        (
            "/system-health/live",
            HostRoute::Live,
            "Liveness probe (deprecated alias of /system/health/live)",
        ),
        (
            "/system-health/ready",
            HostRoute::Ready,
            "Readiness probe (deprecated alias of /system/health/ready)",
        ),
        (
            "/metrics",
            HostRoute::Metrics,
            "Prometheus metrics (text format)",
        ),
        (
            "/system/health/metrics",
            HostRoute::HealthMetrics,
            "Uptime and request counts (JSON)",
        ),
        (
            "/system-health/metrics",
            HostRoute::HealthMetrics,
            "Uptime and request counts (deprecated alias of /system/health/metrics)",
        ),
        (
            "/openapi.json",
            HostRoute::OpenApi,
            "This API as an OpenAPI 3.1 document",
        ),
        (
            "/docs",
            HostRoute::Docs,
            "Interactive API documentation (Swagger UI)",
        ),
        (
            "/docs/{asset}",
            HostRoute::Docs,
            "The Swagger UI page's scripts and styles",
        ),
    ] {
        table.add(Method::Get, path, host(route, summary))?;
    }
    table.add(
        Method::Post,
        "/admin/reload",
        Target {
            access: Access::Admin,
            ..host(
                HostRoute::Reload,
                "Re-read config.toml and serve it without downtime (the old configuration keeps \
                 serving if the new one is rejected)",
            )
        },
    )?;
    for (i, pack) in packs.iter().enumerate() {
        for route in &pack.manifest.routes {
            table.add(
                route.method,
                &route.path,
                Target {
                    owner: Owner::Pack(i),
                    owner_name: pack.name().to_string(),
                    access: route.access,
                    summary: route.summary.clone(),
                },
            )?;
        }
        if pack.manifest.fallback {
            table.set_fallback(Target {
                owner: Owner::Pack(i),
                owner_name: pack.name().to_string(),
                access: Access::Public,
                summary: "Paths no route serves".into(),
            })?;
        }
    }
    Ok(table)
}

/// `valhalla packs`: each enabled pack with its routes, without touching the database.
pub async fn describe_packs(config: &Config) -> Result<String, StartupError> {
    use std::fmt::Write;
    let engine = RuntimeEngine::new(&config.runtime)?;
    let _ticker = EpochTicker::start(engine.engine.clone());
    let db =
        Db::connect_lazy(&config.database.url, 1).map_err(|source| StartupError::Database {
            url: redact_url(&config.database.url),
            source,
        })?;
    let services = Arc::new(Services::new(db, None));
    let grants = PackGrants::parse_all(config)?;
    let names: Vec<String> = config.enabled_packs().map(|(n, _)| n.clone()).collect();
    let packs = load_packs(config, &engine, &services, &grants, &HashMap::new(), &names).await?;
    let routes = build_routes(&packs)?;
    let guards = GuardChain::build(&packs, &config.server.guard_order);
    let chain: Vec<String> = guards.names().into_iter().map(String::from).collect();
    let mut out = String::new();
    if !chain.is_empty() {
        let _ = writeln!(out, "guard chain: {}\n", chain.join(" → "));
    }
    for pack in &packs {
        let m = &pack.manifest;
        let _ = writeln!(out, "{} {} — {}", m.name, m.version, m.description);
        if let Some(position) = chain.iter().position(|g| g == &m.name) {
            let _ = writeln!(out, "  guard   #{} in the chain", position + 1);
        }
        if let Some(schedule) = &m.schedule {
            let _ = writeln!(out, "  tick    every {} ms", schedule.interval_ms);
        }
        if m.fallback {
            let _ = writeln!(out, "  serves  paths no route serves (fallback)");
        }
        let smtp = grants
            .get(&m.name)
            .map_or_else(Vec::new, |g| g.smtp.names());
        if let Some(grants) = config.packs.get(&m.name).map(|p| &p.grants) {
            let list = |l: &[String]| {
                if l.is_empty() {
                    "none".to_string()
                } else {
                    l.join(", ")
                }
            };
            let _ = writeln!(
                out,
                "  grants  outbound: {}; packs: {}; artefacts: {}; smtp: {}",
                list(&grants.outbound),
                list(&grants.packs),
                if grants.artefacts { "yes" } else { "no" },
                list(&smtp)
            );
        }
        for (path, method, target) in routes.entries() {
            if target.owner_name == m.name {
                let _ = writeln!(
                    out,
                    "  {:<7} {:<40} {:<7} {}",
                    method.as_str(),
                    path,
                    target.access.as_str(),
                    target.summary
                );
            }
        }
    }
    Ok(out)
}

/// A built server, bound and ready to run.
pub struct Application {
    listener: TcpListener,
    state: Arc<AppState>,
    grace: Duration,
    _ticker: EpochTicker,
}

impl Application {
    /// Everything up to a bound listener; any problem stops here with a message.
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        let started = std::time::Instant::now();
        PackGrants::parse_all(&config)?;
        let engine = RuntimeEngine::new(&config.runtime)?;
        let ticker = EpochTicker::start(engine.engine.clone());
        let db = connect(&config).await?;
        // With the system_log pack on, pack logs and audit events also go to its table.
        let log_sink = config
            .enabled_packs()
            .any(|(name, _)| name == "system_log")
            .then(|| LogSink::start(db.clone()));
        let services = Arc::new(Services::new(db, log_sink));
        if let Db::Postgres(pool) = &services.db {
            // replicas on one database hear each other's cache invalidations
            let bus = CacheBus::start(
                pool.clone(),
                Arc::clone(&services.cache),
                &services.instance,
            )
            .await
            .map_err(|e| StartupError::Database {
                url: redact_url(&config.database.url),
                source: e.into(),
            })?;
            services.cache.attach(bus);
        }
        let grace = Duration::from_secs(config.server.shutdown_grace_seconds);
        let (served, _) = build_served(config, &engine, &services, None).await?;
        let addr = served.config.bind_addr()?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartupError::Bind { addr, source })?;
        tracing::info!(
            addr = %listener.local_addr().unwrap_or(addr),
            packs = served.packs.len(),
            ms = started.elapsed().as_millis() as u64,
            "ready"
        );
        let auth = &served.config.auth;
        if !auth.enabled {
            tracing::warn!(
                "authentication is OFF: every route is open to every caller (loopback only)"
            );
        } else if auth.admin_key.is_none() {
            tracing::warn!(
                "no bootstrap admin key (VALHALLA_ADMIN_KEY): admin routes need an api_clients admin key"
            );
        }
        let state = Arc::new(AppState::new(services, served, Reloader::new(engine)));
        Ok(Self {
            listener,
            state,
            grace,
            _ticker: ticker,
        })
    }

    /// How the guard chain has been answered so far (instances vs reused decisions).
    pub fn guard_stats(&self) -> Arc<crate::http::guard_chain::GuardStats> {
        self.state.served().guards.stats()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Serve until `shutdown` resolves, then let in-flight requests finish (up to the grace
    /// period) and close the database. SIGHUP reloads the configuration meanwhile.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartupError> {
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = tx.send(true);
        });
        let leases = match &self.state.services.db {
            Db::Postgres(pool) => {
                Some(TickLeases::new(pool.clone(), &self.state.services.instance))
            }
            Db::Sqlite(_) => None,
        };
        let scheduler = Scheduler::start(&self.state.served().packs, &rx, leases);
        self.state.reloader.scheduling(scheduler).await;
        reload_on_sighup(Arc::clone(&self.state), rx.clone());
        let mut graceful = rx.clone();
        let mut grace_rx = rx;
        let app = router(Arc::clone(&self.state));
        // the connection limits (see `http::serve`); a reload does not change them
        let limits = crate::http::serve::Limits::of(&self.state.served().config.server);
        let serve = crate::http::serve::serve(self.listener, app, limits, async move {
            let _ = graceful.wait_for(|stop| *stop).await;
            tracing::info!("shutting down: finishing in-flight requests");
        });
        let grace = self.grace;
        let result = tokio::select! {
            () = serve => Ok(()),
            _ = async move {
                let _ = grace_rx.wait_for(|stop| *stop).await;
                tokio::time::sleep(grace).await;
            } => {
                tracing::warn!("grace period over, dropping remaining connections");
                Ok(())
            }
        };
        if let Some(scheduler) = self.state.reloader.take_scheduler().await {
            scheduler.join().await;
        }
        if let Some(sink) = self.state.services.log_sink.load_full() {
            sink.flush().await;
        }
        self.state.services.db.close().await;
        tracing::info!("stopped");
        result
    }
}

/// SIGHUP re-reads the configuration (as `POST /admin/reload` does) until shutdown.
fn reload_on_sighup(state: Arc<AppState>, mut stop: tokio::sync::watch::Receiver<bool>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "no SIGHUP handler: reload with POST /admin/reload");
                return;
            }
        };
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    got = hangups.recv() => if got.is_none() { break },
                    _ = stop.wait_for(|s| *s) => break,
                }
                tracing::info!("SIGHUP: reloading the configuration");
                // the outcome is logged by the reload itself
                let _ = crate::reload::reload(&state).await;
            }
        });
    }
    #[cfg(not(unix))]
    let _ = (state, stop);
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_never_print() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("sqlite://x.db"), "sqlite://x.db");
    }
}
