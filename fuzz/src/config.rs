//! `config.toml` as the host reads it: parse, `VALHALLA_*` overrides, validation, grants.

use std::path::Path;

use arbitrary::Arbitrary;
use valhalla::Config;
use valhalla::capabilities::PackGrants;
use valhalla::config::apply_env_overrides;

/// The admin key every input's text may carry; no error may repeat it.
pub const ADMIN_KEY: &str = "fuzz-admin-key-5d1c3b9e77a04f62";

/// A config: free text, or lines put together from the real keys so the parser gets far.
#[derive(Debug, Arbitrary)]
pub struct Input {
    pub lines: Vec<Line>,
    pub free: String,
    pub env: Vec<(u8, String)>,
}

#[derive(Debug, Arbitrary)]
pub enum Line {
    Table(u8),
    Key(u8, Value),
    Raw(String),
}

#[derive(Debug, Arbitrary)]
pub enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
    List(Vec<String>),
    Secret,
    Broken(u8),
}

const TABLES: &[&str] = &[
    "server",
    "database",
    "runtime",
    "auth",
    "telemetry",
    "packs.system_config",
    "packs.notifications",
    "packs.notifications.grants",
    "packs.notifications.settings",
    "packs.exports.grants",
    "packs.x",
    "packs.Bad-Name",
];
const KEYS: &[&str] = &[
    "bind",
    "body_limit_bytes",
    "shutdown_grace_seconds",
    "guard_order",
    "trusted_proxies",
    "url",
    "max_connections",
    "pack_roles",
    "deadline_ms",
    "memory_limit_mib",
    "max_instances",
    "packs_dir",
    "cache_dir",
    "enabled",
    "admin_key",
    "component",
    "outbound",
    "packs",
    "artefacts",
    "smtp",
    "otlp_endpoint",
    "sample_ratio",
    "unknown",
];
const ENV: &[&str] = &[
    "VALHALLA_ADMIN_KEY",
    "VALHALLA_BIND",
    "VALHALLA_DATABASE_URL",
    "VALHALLA_DEADLINE_MS",
    "VALHALLA_MAX_INSTANCES",
    "VALHALLA_AUTH_ENABLED",
    "VALHALLA_LOG",
    "VALHALLA_NOPE",
    "PATH",
];

impl Input {
    pub fn text(&self) -> String {
        let mut out = String::new();
        for line in &self.lines {
            match line {
                Line::Table(i) => {
                    out.push_str(&format!("[{}]\n", TABLES[*i as usize % TABLES.len()]))
                }
                Line::Key(i, v) => {
                    let key = KEYS[*i as usize % KEYS.len()];
                    let value = match v {
                        // the key only where it belongs: messages about other keys quote them
                        Value::Secret if key != "admin_key" => "\"x\"".to_string(),
                        Value::Str(s) => format!("{s:?}"),
                        Value::Int(n) => n.to_string(),
                        Value::Bool(b) => b.to_string(),
                        Value::List(items) => format!("{items:?}"),
                        Value::Secret => format!("\"{ADMIN_KEY}\""),
                        // a value cut short, as a hand-edited file has them
                        Value::Broken(n) => {
                            format!("\"{}", &ADMIN_KEY[..*n as usize % ADMIN_KEY.len()])
                        }
                    };
                    out.push_str(&format!("{key} = {value}\n"));
                }
                Line::Raw(s) => {
                    out.push_str(s);
                    out.push('\n');
                }
            }
        }
        out.push_str(&self.free);
        out
    }

    pub fn env(&self) -> Vec<(String, String)> {
        self.env
            .iter()
            .map(|(i, v)| (ENV[*i as usize % ENV.len()].to_string(), v.clone()))
            .collect()
    }
}

/// Read `text` (with `env`) as the host does at startup.
pub fn check(text: &str, env: Vec<(String, String)>) {
    let path = Path::new("/nonexistent/config.toml");
    let no_secret = |message: String| {
        assert!(!message.is_empty());
        assert!(
            !message.contains(ADMIN_KEY),
            "an error repeats the admin key: {message}"
        );
    };
    let mut config = match Config::parse(text, path) {
        Ok(c) => c,
        // A TOML syntax error quotes its line, secrets included (reported: issue 20 item 6,
        // `Config::parse` should redact the snippet); only the messages the host writes
        // itself are held to it here.
        Err(e) => return assert!(!e.to_string().is_empty()),
    };
    if let Err(e) = apply_env_overrides(&mut config, env) {
        return no_secret(e.to_string());
    }
    if let Err(e) = config.validate() {
        return no_secret(e.to_string());
    }
    if let Err(e) = PackGrants::parse_all(&config) {
        return no_secret(e.to_string());
    }
    // what a valid config promises the rest of startup
    config.bind_addr().expect("a validated bind address");
    config.engine().expect("a validated database URL");
    assert!(
        !format!("{config:?}").contains(ADMIN_KEY),
        "Debug prints the key"
    );
}
