//! One writer of `config.toml` for everything that starts a Valhalla host to test or measure
//! it: the e2e harness (`tests/e2e/harness.rs`, which parses the text with
//! `valhalla::config::Config::parse`, so every test checks this writer against the host's
//! schema, `deny_unknown_fields` included) and the bench (`xtask/src/bench.rs`, which writes
//! it to disk for the release binary).
//!
//! Why a crate of its own, with no dependencies: xtask is built on every `cargo xtask …`, and
//! depending on the `valhalla` library (wasmtime, sqlx) would make that a minutes-long build;
//! a `Serialize` on the host's config types would need the host. This builder knows the keys
//! (the names are the host's, see the README's configuration reference) and writes only what
//! was set, so everything else keeps the host's default.
//!
//! ```
//! let text = testkit::ConfigToml::new()
//!     .bind("127.0.0.1:0")
//!     .database_url("sqlite:///tmp/v.db")
//!     .pack("system_config", true)
//!     .grant_packs("system_config", &["maintenance"])
//!     .to_toml();
//! assert!(text.contains("[packs.system_config.grants]\npacks = [\"maintenance\"]\n"));
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// A `config.toml` being put together; [`ConfigToml::to_toml`] writes it.
#[derive(Debug, Clone, Default)]
pub struct ConfigToml {
    /// `[server]`, `[database]`, `[runtime]`, `[auth]`: key → value, in the order they are
    /// written.
    sections: BTreeMap<&'static str, BTreeMap<&'static str, Value>>,
    packs: BTreeMap<String, PackToml>,
}

#[derive(Debug, Clone, Default)]
struct PackToml {
    keys: BTreeMap<&'static str, Value>,
    grants: BTreeMap<&'static str, Value>,
}

#[derive(Debug, Clone)]
enum Value {
    Str(String),
    Int(u64),
    Bool(bool),
    List(Vec<String>),
}

/// The sections in the order they are written (a fixed order keeps the files diffable).
const SECTIONS: [&str; 4] = ["server", "database", "runtime", "auth"];

impl ConfigToml {
    /// Nothing set: every key has the host's default.
    pub fn new() -> Self {
        Self::default()
    }

    /// Packs and migrations from the workspace at `root` (its built packs in
    /// `target/wasm32-wasip2/pack`, its `migrations/`).
    pub fn in_workspace(root: &Path) -> Self {
        Self::new()
            .packs_dir(&root.join("target/wasm32-wasip2/pack"))
            .migrations_dir(&root.join("migrations"))
    }

    fn set(mut self, section: &'static str, key: &'static str, value: Value) -> Self {
        debug_assert!(SECTIONS.contains(&section));
        self.sections.entry(section).or_default().insert(key, value);
        self
    }

    /// `server.bind`
    pub fn bind(self, addr: &str) -> Self {
        self.set("server", "bind", Value::Str(addr.into()))
    }

    /// `server.body_limit_bytes`
    pub fn body_limit_bytes(self, bytes: u64) -> Self {
        self.set("server", "body_limit_bytes", Value::Int(bytes))
    }

    /// `server.shutdown_grace_seconds`
    pub fn shutdown_grace_seconds(self, seconds: u64) -> Self {
        self.set("server", "shutdown_grace_seconds", Value::Int(seconds))
    }

    /// `server.guard_order`
    pub fn guard_order(self, packs: &[&str]) -> Self {
        self.set("server", "guard_order", list(packs))
    }

    /// `database.url`
    pub fn database_url(self, url: &str) -> Self {
        self.set("database", "url", Value::Str(url.into()))
    }

    /// `runtime.deadline_ms`
    pub fn deadline_ms(self, ms: u64) -> Self {
        self.set("runtime", "deadline_ms", Value::Int(ms))
    }

    /// `runtime.max_instances`
    pub fn max_instances(self, n: u64) -> Self {
        self.set("runtime", "max_instances", Value::Int(n))
    }

    /// `runtime.packs_dir`
    pub fn packs_dir(self, dir: &Path) -> Self {
        self.set("runtime", "packs_dir", path(dir))
    }

    /// `runtime.migrations_dir`
    pub fn migrations_dir(self, dir: &Path) -> Self {
        self.set("runtime", "migrations_dir", path(dir))
    }

    /// `runtime.cache_dir`
    pub fn cache_dir(self, dir: &Path) -> Self {
        self.set("runtime", "cache_dir", path(dir))
    }

    /// `auth.enabled = false` (the host then listens only on loopback).
    pub fn auth_off(self) -> Self {
        self.set("auth", "enabled", Value::Bool(false))
    }

    /// `auth.enabled = true` with the bootstrap `auth.admin_key`.
    pub fn admin_key(self, key: &str) -> Self {
        self.set("auth", "enabled", Value::Bool(true)).set(
            "auth",
            "admin_key",
            Value::Str(key.into()),
        )
    }

    fn pack_mut(&mut self, name: &str) -> &mut PackToml {
        self.packs.entry(name.to_string()).or_default()
    }

    /// `[packs.<name>] enabled = …`
    pub fn pack(mut self, name: &str, enabled: bool) -> Self {
        self.pack_mut(name)
            .keys
            .insert("enabled", Value::Bool(enabled));
        self
    }

    /// `packs.<name>.grants.packs`: the packs `name` may call in-process.
    pub fn grant_packs(mut self, name: &str, targets: &[&str]) -> Self {
        self.pack_mut(name).grants.insert("packs", list(targets));
        self
    }

    /// `packs.<name>.grants.artefacts = true`: `name` may write files of its own.
    pub fn grant_artefacts(mut self, name: &str) -> Self {
        self.pack_mut(name)
            .grants
            .insert("artefacts", Value::Bool(true));
        self
    }

    /// `packs.<name>.grants.outbound`: the URL patterns `name` may call.
    pub fn grant_outbound(mut self, name: &str, patterns: &[&str]) -> Self {
        self.pack_mut(name)
            .grants
            .insert("outbound", list(patterns));
        self
    }

    /// The file's text.
    pub fn to_toml(&self) -> String {
        let mut out = String::new();
        for section in SECTIONS {
            if let Some(keys) = self.sections.get(section) {
                table(&mut out, section, keys);
            }
        }
        for (name, pack) in &self.packs {
            // a pack named in no key still gets its table: `[packs.x]` alone enables it
            table(&mut out, &format!("packs.{name}"), &pack.keys);
            if !pack.grants.is_empty() {
                table(&mut out, &format!("packs.{name}.grants"), &pack.grants);
            }
        }
        out
    }

    /// Write the file to `path`.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, self.to_toml())
    }
}

fn list(items: &[&str]) -> Value {
    Value::List(items.iter().map(|s| s.to_string()).collect())
}

fn path(p: &Path) -> Value {
    Value::Str(p.display().to_string())
}

fn table(out: &mut String, name: &str, keys: &BTreeMap<&'static str, Value>) {
    let _ = writeln!(out, "[{name}]");
    for (key, value) in keys {
        let _ = write!(out, "{key} = ");
        match value {
            Value::Str(s) => quote(out, s),
            Value::Int(n) => {
                let _ = write!(out, "{n}");
            }
            Value::Bool(b) => {
                let _ = write!(out, "{b}");
            }
            Value::List(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    quote(out, item);
                }
                out.push(']');
            }
        }
        out.push('\n');
    }
}

/// A TOML basic string: `"` and `\` escaped, control characters as `\uXXXX`.
fn quote(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_set_writes_nothing() {
        assert_eq!(ConfigToml::new().to_toml(), "");
    }

    #[test]
    fn sections_in_a_fixed_order_then_packs_with_their_grants() {
        let text = ConfigToml::new()
            .admin_key("k")
            .deadline_ms(500)
            .guard_order(&["a", "b"])
            .pack("b", false)
            .grant_outbound("a", &["http://127.0.0.1:*"])
            .to_toml();
        assert_eq!(
            text,
            "[server]\nguard_order = [\"a\", \"b\"]\n\
             [runtime]\ndeadline_ms = 500\n\
             [auth]\nadmin_key = \"k\"\nenabled = true\n\
             [packs.a]\n[packs.a.grants]\noutbound = [\"http://127.0.0.1:*\"]\n\
             [packs.b]\nenabled = false\n"
        );
    }

    #[test]
    fn strings_are_escaped() {
        let text = ConfigToml::new()
            .database_url("sqlite://C:\\a \"b\"\n")
            .to_toml();
        assert_eq!(
            text,
            "[database]\nurl = \"sqlite://C:\\\\a \\\"b\\\"\\u000A\"\n"
        );
    }

    #[test]
    fn the_last_value_of_a_key_wins() {
        let text = ConfigToml::new().auth_off().admin_key("k").to_toml();
        assert_eq!(text, "[auth]\nadmin_key = \"k\"\nenabled = true\n");
    }
}
