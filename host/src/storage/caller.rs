//! Who runs a statement: the host itself, or a pack (its tables, its PostgreSQL pool, its
//! call's deadline). Every statement reaches the database on behalf of one [`Caller`].

use std::collections::HashSet;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Instant;

use sqlx::PgPool;

/// One pack's tables, as its migrations created them, and what the database side of its
/// sandbox holds: on PostgreSQL, the pool logged in as the pack's own role.
#[derive(Debug, Default)]
pub struct PackTables {
    pub pack: String,
    /// lower-cased table names
    tables: HashSet<String>,
    /// tagged SQL texts already proved (by SQLite) to hold exactly one statement
    single: RwLock<HashSet<Arc<str>>>,
    /// PostgreSQL: connections as the pack's role (unset when the operator opted out)
    pub pg: OnceLock<PackPool>,
}

/// A pack's PostgreSQL pool and the role it logs in as.
#[derive(Debug, Clone)]
pub struct PackPool {
    pub pool: PgPool,
    pub role: String,
    /// the pack's call deadline, which its statements may not outlive
    pub deadline: std::time::Duration,
}

/// Distinct statements remembered as single per pack; past this each is checked every time.
const SINGLE_REMEMBERED: usize = 4096;

impl PackTables {
    pub fn new(pack: &str, tables: impl IntoIterator<Item = String>) -> Self {
        Self {
            pack: pack.to_string(),
            tables: tables.into_iter().map(|t| t.to_ascii_lowercase()).collect(),
            ..Self::default()
        }
    }

    pub fn owns(&self, table: &str) -> bool {
        self.tables.contains(&table.to_ascii_lowercase())
    }

    pub fn tables(&self) -> impl Iterator<Item = &str> {
        self.tables.iter().map(String::as_str)
    }

    pub(super) fn known_single(&self, sql: &str) -> bool {
        self.single.read().is_ok_and(|s| s.contains(sql))
    }

    pub(super) fn remember_single(&self, sql: &str) {
        if let Ok(mut s) = self.single.write()
            && s.len() < SINGLE_REMEMBERED
        {
            s.insert(Arc::from(sql));
        }
    }
}

/// Who runs a statement: the host (migrations, the system log) or a pack, until when.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// `None`: the host itself
    pub pack: Option<Arc<PackTables>>,
    pub deadline: Option<Instant>,
}

impl Caller {
    pub fn host() -> Self {
        Self::default()
    }

    pub fn pack(tables: Arc<PackTables>, deadline: Instant) -> Self {
        Self {
            pack: Some(tables),
            deadline: Some(deadline),
        }
    }

    /// The SQL as the statement caches see it: a pack's carries its name in a leading
    /// comment, so equal texts of two packs are two cache entries, and a statement one
    /// pack's authorizer approved is never reused for another (pack names are identifiers,
    /// so the comment cannot be closed early).
    pub fn tag(&self, sql: &str) -> String {
        match &self.pack {
            Some(p) => format!("/*{}*/{sql}", p.pack),
            None => sql.to_string(),
        }
    }

    /// Whether `sql` (tagged) still has to be proved a single statement.
    pub fn needs_single_check(&self, sql: &str) -> bool {
        self.pack.as_ref().is_some_and(|p| !p.known_single(sql))
    }
}
