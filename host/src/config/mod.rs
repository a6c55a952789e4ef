//! `config.toml`: typed settings for the server, database, runtime and packs, with `VALHALLA_*`
//! environment overrides and validation that names the file, key and problem.

mod env;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use env::apply_env_overrides;

/// A configuration problem. Every variant names where it came from.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: `{key}`: {problem}")]
    Invalid {
        path: PathBuf,
        key: String,
        problem: String,
    },
    #[error("environment variable {var}: {problem}")]
    Env { var: String, problem: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub database: DatabaseConfig,
    #[serde(default)]
    pub runtime: RuntimeConfig,
    #[serde(default)]
    pub auth: AuthConfig,
    #[serde(default)]
    pub packs: BTreeMap<String, PackConfig>,
    /// Span export (OTLP/HTTP) and sampling.
    #[serde(default)]
    pub telemetry: crate::telemetry::TelemetryConfig,
    /// Where the file was read from; relative paths are relative to its directory.
    #[serde(skip)]
    pub source: PathBuf,
    /// `serve --bind`: kept over the file's `server.bind`, across reloads too.
    #[serde(skip)]
    pub bind_override: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub bind: String,
    /// Largest request body accepted; bigger is a 413.
    pub body_limit_bytes: usize,
    /// How long in-flight requests may take to finish on shutdown.
    pub shutdown_grace_seconds: u64,
    /// Guard packs in the order they run; guards not listed run after, by their manifest order.
    pub guard_order: Vec<String>,
    /// Proxies (CIDRs or addresses) whose `Forwarded` / `X-Forwarded-For` is believed; from
    /// any other peer those headers are ignored.
    pub trusted_proxies: Vec<String>,
    /// A request's head (request line and headers) must arrive within this, from the
    /// connection's start (or, on a kept-alive connection, from the end of the previous
    /// answer); a slower connection is closed.
    pub header_read_timeout_ms: u64,
    /// A request body may take this long whatever its size; past it, it must arrive at
    /// `body_min_bytes_per_second` on average, or the request is refused (400) and the
    /// connection closed.
    pub body_timeout_ms: u64,
    pub body_min_bytes_per_second: u64,
    /// Connections served at once; one more is answered 503 (`Retry-After`,
    /// `Connection: close`) without reaching a pack, except `GET /system/health/live`.
    pub max_connections: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8000".into(),
            body_limit_bytes: 1024 * 1024,
            shutdown_grace_seconds: 30,
            guard_order: Vec::new(),
            trusted_proxies: Vec::new(),
            header_read_timeout_ms: 10_000,
            body_timeout_ms: 10_000,
            body_min_bytes_per_second: 1024,
            max_connections: 4096,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://path/to/file.db` (created if missing) or `postgres://user:pass@host/db`.
    pub url: String,
    /// PostgreSQL: the pool size. SQLite: one writing connection plus the rest (at least
    /// one) reading.
    pub max_connections: u32,
    /// PostgreSQL: run each pack's SQL as a login role of its own (created by the host),
    /// so that the database refuses what is not the pack's. `false` leaves the sandbox to the
    /// host's SQL check alone (logged at every start).
    pub pack_roles: bool,
    /// PostgreSQL: connections each pack's pool may open (opened on demand, closed after a
    /// minute idle).
    pub pack_max_connections: u32,
    /// How long a statement waits for a connection (every pool; SQLite's readers and its
    /// writer's queue) before the request is answered 503 with `Retry-After`.
    pub acquire_timeout_ms: u64,
    /// SQLite: how long a statement retries, with backoff, while another process holds the
    /// database's write lock (`SQLITE_BUSY`); never past the caller's deadline. Then 503.
    pub busy_timeout_ms: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: "sqlite://valhalla.db".into(),
            max_connections: 16,
            pack_roles: true,
            pack_max_connections: 3,
            acquire_timeout_ms: 1_000,
            busy_timeout_ms: 5_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    /// Deadline of one call into a pack (handle or guard).
    pub deadline_ms: u64,
    /// Deadline of one scheduled `tick`.
    pub tick_deadline_ms: u64,
    /// Linear memory cap per pack instance.
    pub memory_limit_mib: u64,
    /// Pack instances that may exist at once (pool size).
    pub max_instances: u32,
    /// How long a call waits for a free instance when all `max_instances` are in use, before
    /// the request is answered 503 with `Retry-After`.
    pub instance_wait_ms: u64,
    /// Where built packs are found: `<packs_dir>/<name>.wasm`.
    pub packs_dir: PathBuf,
    /// Per-pack migrations: `<migrations_dir>/<name>/NNNN_*.sql`.
    pub migrations_dir: PathBuf,
    /// Compiled-component cache, so a warm start does not recompile.
    pub cache_dir: PathBuf,
    /// Files packs granted `artefacts` write (exports), one directory per pack.
    pub artefacts_dir: PathBuf,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            deadline_ms: 2_000,
            tick_deadline_ms: 30_000,
            memory_limit_mib: 64,
            max_instances: 256,
            instance_wait_ms: 1_000,
            packs_dir: "target/wasm32-wasip2/pack".into(),
            migrations_dir: "migrations".into(),
            cache_dir: ".valhalla/compiled".into(),
            artefacts_dir: ".valhalla/artefacts".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackConfig {
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    /// The component; default `<packs_dir>/<name>.wasm`.
    pub component: Option<PathBuf>,
    /// This pack's call deadline, when it needs another than `runtime.deadline_ms` (e.g. a
    /// pack that waits on outbound requests).
    pub deadline_ms: Option<u64>,
    /// Free-form settings handed to the pack as JSON.
    #[serde(default)]
    pub settings: toml::Table,
    #[serde(default)]
    pub grants: Grants,
}

fn enabled_by_default() -> bool {
    true
}

/// What a pack may reach beyond its own tables, as the file writes it. Deny by default; each
/// capability parses its own into a typed grant at startup (`capabilities::PackGrants`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grants {
    /// URL patterns the pack may call: `https://*.example.com:443`, `http://127.0.0.1:*`.
    #[serde(default)]
    pub outbound: Vec<String>,
    /// Packs whose routes this pack may call in-process (the grant replaces their access check).
    #[serde(default)]
    pub packs: Vec<String>,
    /// Files of its own in `runtime.artefacts_dir/<pack>/` (large outputs such as exports).
    #[serde(default)]
    pub artefacts: bool,
    /// SMTP relays the pack may send mail through (`outbound-mail`): a URL
    /// (`smtp://127.0.0.1:2525`, `smtp://mail.internal:587?tls=starttls`, `smtps://…:465`), or
    /// a table `{ url, username, password_env | password, hello_name }`; parsed by
    /// `capabilities::outbound_mail_grant`.
    #[serde(default)]
    pub smtp: Vec<toml::Value>,
}

/// A secret that never prints.
#[derive(Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Who may call what.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Check every route's access level against the caller's roles. Off only for local
    /// development: the server then refuses to listen on anything but loopback.
    pub enabled: bool,
    /// The bootstrap admin credential (`X-API-Key` or `Authorization: Bearer`), so a fresh
    /// install can create its first client. Prefer `VALHALLA_ADMIN_KEY` to writing it here.
    pub admin_key: Option<Secret>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            admin_key: None,
        }
    }
}

/// The database engine a URL selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

impl Config {
    /// Read, parse, apply `VALHALLA_*` overrides and validate.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = Self::parse(&text, path)?;
        apply_env_overrides(&mut config, std::env::vars())?;
        config.validate()?;
        Ok(config)
    }

    /// Parse `text` as if read from `path` (no environment, no validation).
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        // where and what, not the offending line itself: it may hold a key or a password
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: parse_message(text, &e),
        })?;
        config.source = path.to_path_buf();
        Ok(config)
    }

    /// Listen on `bind` whatever the file says (`serve --bind`); a reload keeps it.
    pub fn override_bind(&mut self, bind: String) {
        self.server.bind = bind.clone();
        self.bind_override = Some(bind);
    }

    /// A problem with `key` of this file.
    pub fn invalid(&self, key: impl Into<String>, problem: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            path: self.source.clone(),
            key: key.into(),
            problem: problem.into(),
        }
    }

    /// `server.trusted_proxies`, parsed.
    pub fn trusted_proxies(&self) -> Result<crate::http::TrustedProxies, ConfigError> {
        crate::http::TrustedProxies::parse(&self.server.trusted_proxies)
            .map_err(|e| self.invalid("server.trusted_proxies", e.to_string()))
    }

    /// Check what serde cannot: addresses, URLs, limits, pack names and component files.
    /// (Grants are the capabilities' to parse: `capabilities::PackGrants`.)
    pub fn validate(&self) -> Result<(), ConfigError> {
        let addr = self.bind_addr()?;
        if !self.auth.enabled && !addr.ip().is_loopback() {
            return Err(self.invalid(
                "auth.enabled",
                format!(
                    "authentication is off, so the server may listen only on loopback, not {addr}"
                ),
            ));
        }
        if self
            .auth
            .admin_key
            .as_ref()
            .is_some_and(|k| k.expose().len() < 24)
        {
            return Err(self.invalid("auth.admin_key", "must be at least 24 characters"));
        }
        for name in &self.server.guard_order {
            if !self.packs.contains_key(name) {
                return Err(self.invalid(
                    "server.guard_order",
                    format!("no pack `{name}` in this file"),
                ));
            }
        }
        self.trusted_proxies()?;
        self.engine()?;
        self.telemetry
            .check()
            .map_err(|(key, problem)| self.invalid(key, problem))?;
        if self.server.body_limit_bytes == 0 {
            return Err(self.invalid("server.body_limit_bytes", "must be greater than 0"));
        }
        if self.database.max_connections == 0 {
            return Err(self.invalid("database.max_connections", "must be greater than 0"));
        }
        self.check_limits()?;
        if self.database.pack_max_connections == 0 {
            return Err(self.invalid("database.pack_max_connections", "must be greater than 0"));
        }
        let rt = &self.runtime;
        if !(1..=600_000).contains(&rt.deadline_ms) {
            return Err(self.invalid("runtime.deadline_ms", "must be between 1 and 600000"));
        }
        if !(1..=3_600_000).contains(&rt.tick_deadline_ms) {
            return Err(self.invalid("runtime.tick_deadline_ms", "must be between 1 and 3600000"));
        }
        if !(1..=4096).contains(&rt.memory_limit_mib) {
            return Err(self.invalid("runtime.memory_limit_mib", "must be between 1 and 4096"));
        }
        if !(1..=100_000).contains(&rt.max_instances) {
            return Err(self.invalid("runtime.max_instances", "must be between 1 and 100000"));
        }
        for (name, pack) in &self.packs {
            if !is_pack_name(name) {
                return Err(self.invalid(
                    format!("packs.{name}"),
                    "a pack name is lower-case letters, digits and `_`, starting with a letter",
                ));
            }
            if pack
                .deadline_ms
                .is_some_and(|ms| !(1..=600_000).contains(&ms))
            {
                return Err(self.invalid(
                    format!("packs.{name}.deadline_ms"),
                    "must be between 1 and 600000",
                ));
            }
            if pack.enabled {
                let component = self.component_path(name);
                if !component.is_file() {
                    let key = if pack.component.is_some() {
                        format!("packs.{name}.component")
                    } else {
                        format!("packs.{name}")
                    };
                    return Err(self.invalid(
                        key,
                        format!(
                            "component {} not found (build the packs with `cargo xtask build`, or set `component`)",
                            component.display()
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The backpressure keys: each within a sane range.
    fn check_limits(&self) -> Result<(), ConfigError> {
        let ms = |key: &str, v: u64, max: u64| {
            if (1..=max).contains(&v) {
                Ok(())
            } else {
                Err(self.invalid(key, format!("must be between 1 and {max}")))
            }
        };
        let s = &self.server;
        ms(
            "server.header_read_timeout_ms",
            s.header_read_timeout_ms,
            600_000,
        )?;
        ms("server.body_timeout_ms", s.body_timeout_ms, 3_600_000)?;
        ms(
            "server.body_min_bytes_per_second",
            s.body_min_bytes_per_second,
            1 << 30,
        )?;
        ms(
            "server.max_connections",
            s.max_connections as u64,
            1_000_000,
        )?;
        ms(
            "runtime.instance_wait_ms",
            self.runtime.instance_wait_ms,
            600_000,
        )?;
        ms(
            "database.acquire_timeout_ms",
            self.database.acquire_timeout_ms,
            600_000,
        )?;
        ms(
            "database.busy_timeout_ms",
            self.database.busy_timeout_ms,
            600_000,
        )
    }

    pub fn bind_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.server.bind.parse().map_err(|_| {
            self.invalid(
                "server.bind",
                format!(
                    "`{}` is not an address like 127.0.0.1:8000",
                    self.server.bind
                ),
            )
        })
    }

    pub fn engine(&self) -> Result<Engine, ConfigError> {
        let url = &self.database.url;
        if url.starts_with("sqlite:") {
            Ok(Engine::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Engine::Postgres)
        } else {
            Err(self.invalid("database.url", "must start with sqlite: or postgres://"))
        }
    }

    /// A path from the config, relative to the config file's directory.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            return path.to_path_buf();
        }
        match self.source.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.join(path),
            _ => path.to_path_buf(),
        }
    }

    pub fn component_path(&self, name: &str) -> PathBuf {
        match self.packs.get(name).and_then(|p| p.component.as_ref()) {
            Some(path) => self.resolve(path),
            None => self
                .resolve(&self.runtime.packs_dir)
                .join(format!("{name}.wasm")),
        }
    }

    /// Enabled packs, in the order of the file's table (alphabetical).
    pub fn enabled_packs(&self) -> impl Iterator<Item = (&String, &PackConfig)> {
        self.packs.iter().filter(|(_, p)| p.enabled)
    }
}

/// Lower-case letters, digits and `_`, starting with a letter; at most 64 characters.
pub fn is_pack_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 64
        && matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// A TOML error as `line L, column C: message`, without quoting the file's text.
fn parse_message(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim_end().replace('\n', " ");
    match e.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let start = before.rfind('\n').map_or(0, |i| i + 1);
            let column = before.len() - start + 1;
            // the key the line sets, if it is one: its name, never its value
            let key = text[start..]
                .lines()
                .next()
                .and_then(|l| l.split_once('='))
                .map(|(k, _)| k.trim())
                .filter(|k| !k.is_empty() && !k.contains(['"', '\'', '[']));
            match key {
                Some(key) => format!("line {line}, column {column} (`{key}`): {message}"),
                None => format!("line {line}, column {column}: {message}"),
            }
        }
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/valhalla/config.toml"))
    }

    #[test]
    fn defaults_fill_an_empty_file() {
        let c = parse("").unwrap();
        assert_eq!(c.server.bind, "127.0.0.1:8000");
        assert_eq!(c.engine().unwrap(), Engine::Sqlite);
        assert!(c.packs.is_empty());
    }

    #[test]
    fn unknown_key_names_file_and_key() {
        let err = parse("[server]\nbnd = \"x\"\n").unwrap_err().to_string();
        assert!(err.contains("/etc/valhalla/config.toml"), "{err}");
        assert!(err.contains("bnd"), "{err}");
    }

    #[test]
    fn bad_url_names_the_key() {
        let c = parse("[database]\nurl = \"mysql://x\"\n").unwrap();
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("database.url"), "{err}");
    }

    #[test]
    fn bad_bind_names_the_key() {
        let c = parse("[server]\nbind = \"localhost\"\n").unwrap();
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("server.bind")
        );
    }

    #[test]
    fn missing_component_names_the_pack() {
        let c = parse("[packs.nope]\nenabled = true\n").unwrap();
        let err = c.validate().unwrap_err().to_string();
        assert!(
            err.contains("packs.nope") && err.contains("not found"),
            "{err}"
        );
    }

    #[test]
    fn disabled_pack_needs_no_component() {
        let c = parse("[packs.nope]\nenabled = false\n").unwrap();
        c.validate().unwrap();
    }

    #[test]
    fn bad_pack_name_is_refused() {
        let c = parse("[packs.Bad-Name]\nenabled = false\n").unwrap();
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("packs.Bad-Name")
        );
    }

    #[test]
    fn auth_off_means_loopback_only() {
        let c = parse("[auth]\nenabled = false\n[server]\nbind = \"0.0.0.0:8000\"\n").unwrap();
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("auth.enabled")
        );
        let c = parse("[auth]\nenabled = false\n").unwrap();
        c.validate().unwrap();
    }

    #[test]
    fn secrets_never_print() {
        let c = parse("[auth]\nadmin_key = \"super-secret-admin-key-123456\"\n").unwrap();
        assert!(!format!("{c:?}").contains("super-secret"));
    }

    #[test]
    fn relative_paths_follow_the_file() {
        let c = parse("").unwrap();
        assert_eq!(
            c.component_path("x"),
            PathBuf::from("/etc/valhalla/target/wasm32-wasip2/pack/x.wasm")
        );
    }

    #[test]
    fn a_syntax_error_names_the_place_not_the_line() {
        let text = "[auth]\nadmin_key = \"s3cret-admin-key\n";
        let e = Config::parse(text, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2") && e.contains("`admin_key`"), "{e}");
        assert!(!e.contains("s3cret"), "{e}");
    }
}

#[cfg(test)]
mod props;
