//! The table sandbox: a pack's SQL may read and write only the tables its own migrations
//! create, with one DML statement per call and no functions that reach outside the database.
//! Verdicts are cached per SQL text, so the parse is paid once per distinct statement.

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;
use std::sync::{Arc, RwLock};

use sqlparser::ast::{
    Expr, ObjectName, Statement, visit_expressions, visit_relations, visit_statements,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

/// Why a pack's statement was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    #[error("the SQL does not parse: {0}")]
    Parse(String),
    #[error("one statement per call")]
    MultipleStatements,
    #[error("only SELECT, INSERT, UPDATE and DELETE are allowed")]
    NotDml,
    #[error("table `{0}` does not belong to this pack")]
    ForeignTable(String),
    #[error("function `{0}` is not allowed")]
    Function(String),
    #[error("the statement uses ${used} but {given} parameters were given")]
    ParamCount { used: usize, given: usize },
}

/// What the check learnt about a statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatementInfo {
    /// highest `$N` used
    pub params: usize,
    /// a query that changes nothing (no INSERT, UPDATE or DELETE anywhere in it), so it may
    /// run on a read-only connection
    pub read_only: bool,
}

/// Functions that reach files, other databases or server settings.
fn forbidden_function(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name.starts_with("pg_")
        || name.starts_with("lo_")
        || name.starts_with("sqlite_")
        || name.starts_with("dblink")
        || matches!(
            name.as_str(),
            "load_extension"
                | "readfile"
                | "writefile"
                | "edit"
                | "current_setting"
                | "set_config"
                | "query_to_xml"
        )
}

/// Tables created by a migration script (`CREATE TABLE`), lower-cased.
pub fn created_tables(sql: &str) -> Result<Vec<String>, String> {
    let statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).map_err(|e| e.to_string())?;
    Ok(statements
        .iter()
        .filter_map(|s| match s {
            Statement::CreateTable(t) => Some(table_name(&t.name)),
            _ => None,
        })
        .flatten()
        .collect())
}

/// The unqualified, lower-cased table name; `None` when schema-qualified.
fn table_name(name: &ObjectName) -> Option<String> {
    match name.0.as_slice() {
        [part] => part.as_ident().map(|i| i.value.to_ascii_lowercase()),
        _ => None,
    }
}

/// One pack's table sandbox.
#[derive(Debug, Default)]
pub struct TableAccess {
    owned: HashSet<String>,
    verdicts: RwLock<HashMap<Arc<str>, Result<StatementInfo, AccessError>>>,
}

/// Distinct statements remembered per pack; past this, verdicts are computed each time.
const MAX_CACHED: usize = 4096;

impl TableAccess {
    pub fn new(owned: impl IntoIterator<Item = String>) -> Self {
        Self {
            owned: owned.into_iter().collect(),
            verdicts: RwLock::default(),
        }
    }

    pub fn owned(&self) -> &HashSet<String> {
        &self.owned
    }

    /// Check `sql` run with `given` parameters.
    pub fn check(&self, sql: &str, given: usize) -> Result<StatementInfo, AccessError> {
        let cached = self.verdicts.read().ok().and_then(|v| v.get(sql).cloned());
        let verdict = match cached {
            Some(v) => v,
            None => {
                let v = self.analyse(sql);
                if let Ok(mut map) = self.verdicts.write()
                    && map.len() < MAX_CACHED
                {
                    map.insert(Arc::from(sql), v.clone());
                }
                v
            }
        };
        let info = verdict?;
        if info.params != given {
            return Err(AccessError::ParamCount {
                used: info.params,
                given,
            });
        }
        Ok(info)
    }

    fn analyse(&self, sql: &str) -> Result<StatementInfo, AccessError> {
        // sqlparser backtracks on nested calls: 20 of them, 371 characters in all, took 16 s
        // to refuse (found by the `sql_sandbox` fuzz target), on the host's thread, outside
        // any pack deadline; a pack's SQL never nests that deep
        if nesting(sql) > MAX_NESTING {
            return Err(AccessError::Parse(format!(
                "parentheses nested deeper than {MAX_NESTING}"
            )));
        }
        let statements = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .map_err(|e| AccessError::Parse(e.to_string()))?;
        let [statement] = statements.as_slice() else {
            return Err(AccessError::MultipleStatements);
        };
        let ctes: HashSet<String> = match statement {
            Statement::Query(q) => q
                .with
                .iter()
                .flat_map(|w| w.cte_tables.iter())
                .map(|c| c.alias.name.value.to_ascii_lowercase())
                .collect(),
            Statement::Insert(_) | Statement::Update { .. } | Statement::Delete(_) => {
                HashSet::new()
            }
            _ => return Err(AccessError::NotDml),
        };
        if let ControlFlow::Break(e) = visit_relations(statement, |name| match table_name(name) {
            Some(t) if self.owned.contains(&t) || ctes.contains(&t) => ControlFlow::Continue(()),
            _ => ControlFlow::Break(AccessError::ForeignTable(name.to_string())),
        }) {
            return Err(e);
        }
        let mut params = 0usize;
        if let ControlFlow::Break(e) = visit_expressions(statement, |expr| {
            match expr {
                Expr::Function(f) if forbidden_function(&f.name.to_string()) => {
                    return ControlFlow::Break(AccessError::Function(f.name.to_string()));
                }
                Expr::Value(v) => {
                    if let sqlparser::ast::Value::Placeholder(p) = &v.value
                        && let Some(n) = p.strip_prefix('$').and_then(|n| n.parse::<usize>().ok())
                    {
                        params = params.max(n);
                    }
                }
                _ => {}
            }
            ControlFlow::Continue(())
        }) {
            return Err(e);
        }
        Ok(StatementInfo {
            params,
            read_only: matches!(statement, Statement::Query(_)) && !writes(statement),
        })
    }
}

/// The deepest parentheses a statement may nest before the parser is asked.
const MAX_NESTING: usize = 16;

/// How deep `sql`'s parentheses nest outside its quotes (those in comments count too: a
/// statement refused for that is one a pack can write more plainly).
fn nesting(sql: &str) -> usize {
    let (mut depth, mut deepest, mut quote) = (0usize, 0usize, None::<char>);
    for c in sql.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '(') => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            (None, ')') => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Whether a statement, or any statement nested in it (a data-modifying CTE), writes.
fn writes(statement: &Statement) -> bool {
    visit_statements(statement, |s| match s {
        Statement::Insert(_)
        | Statement::Update { .. }
        | Statement::Delete(_)
        | Statement::Merge { .. } => ControlFlow::Break(()),
        _ => ControlFlow::Continue(()),
    })
    .is_break()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access() -> TableAccess {
        TableAccess::new(["system_config".to_string()])
    }

    #[test]
    fn finds_created_tables() {
        let t = created_tables("CREATE TABLE a (x TEXT); CREATE INDEX i ON a (x); CREATE TABLE IF NOT EXISTS B (y BIGINT);")
            .unwrap();
        assert_eq!(t, ["a", "b"]);
    }

    #[test]
    fn own_table_passes() {
        let a = access();
        a.check("SELECT key FROM system_config WHERE key = $1", 1)
            .unwrap();
        a.check(
            "INSERT INTO system_config (key) VALUES ($1) ON CONFLICT (key) DO UPDATE SET key = excluded.key WHERE system_config.mutable = $2 RETURNING key",
            2,
        )
        .unwrap();
        a.check("DELETE FROM system_config WHERE key = $1", 1)
            .unwrap();
        a.check("UPDATE system_config SET value = $2 WHERE key = $1", 2)
            .unwrap();
        a.check(
            "WITH x AS (SELECT key FROM system_config) SELECT COUNT(*) FROM x",
            0,
        )
        .unwrap();
    }

    #[test]
    fn reads_are_told_from_writes() {
        let a = access();
        let read_only = |sql: &str| a.check(sql, 0).unwrap().read_only;
        assert!(read_only("SELECT key FROM system_config"));
        assert!(read_only(
            "WITH x AS (SELECT key FROM system_config) SELECT COUNT(*) FROM x"
        ));
        assert!(read_only(
            "SELECT key FROM system_config UNION SELECT value FROM system_config"
        ));
        assert!(!read_only("DELETE FROM system_config"));
        assert!(!read_only(
            "UPDATE system_config SET value = 'x' RETURNING key"
        ));
        assert!(!read_only(
            "INSERT INTO system_config (key) SELECT key FROM system_config"
        ));
        assert!(!read_only(
            "WITH gone AS (DELETE FROM system_config RETURNING key) SELECT key FROM gone"
        ));
    }

    #[test]
    fn foreign_tables_are_refused() {
        let a = access();
        assert!(matches!(
            a.check("SELECT * FROM valhalla_migrations", 0),
            Err(AccessError::ForeignTable(_))
        ));
        assert!(matches!(
            a.check("SELECT * FROM sqlite_master", 0),
            Err(AccessError::ForeignTable(_))
        ));
        assert!(matches!(
            a.check("SELECT * FROM system_config JOIN other ON true", 0),
            Err(AccessError::ForeignTable(_))
        ));
        assert!(matches!(
            a.check(
                "SELECT * FROM system_config WHERE key IN (SELECT name FROM users)",
                0
            ),
            Err(AccessError::ForeignTable(_))
        ));
        assert!(matches!(
            a.check("SELECT * FROM public.system_config", 0),
            Err(AccessError::ForeignTable(_))
        ));
    }

    #[test]
    fn non_dml_and_batches_are_refused() {
        let a = access();
        assert_eq!(
            a.check("DROP TABLE system_config", 0),
            Err(AccessError::NotDml)
        );
        assert_eq!(
            a.check("SELECT 1 FROM system_config; DELETE FROM system_config", 0),
            Err(AccessError::MultipleStatements)
        );
        assert!(matches!(a.check("SELEC x", 0), Err(AccessError::Parse(_))));
    }

    #[test]
    fn dangerous_functions_are_refused() {
        let a = access();
        assert!(matches!(
            a.check("SELECT pg_read_file($1) FROM system_config", 1),
            Err(AccessError::Function(_))
        ));
        assert!(matches!(
            a.check("SELECT load_extension($1) FROM system_config", 1),
            Err(AccessError::Function(_))
        ));
    }

    #[test]
    fn deep_nesting_is_refused_before_the_parser() {
        let a = access();
        let deep = format!(
            "DELETE FROM ( ( SELECT ( ITEMS ( ( ( ( ( {} count(*) ( ( ( ( (",
            "load_extension( ".repeat(20)
        );
        let started = std::time::Instant::now();
        assert!(matches!(a.check(&deep, 0), Err(AccessError::Parse(_))));
        assert!(started.elapsed() < std::time::Duration::from_millis(100));
        // quoted parentheses do not count
        let quoted = format!(
            "SELECT key FROM system_config WHERE key = '{}'",
            "(".repeat(40)
        );
        a.check(&quoted, 0).unwrap();
    }

    #[test]
    fn parameter_count_must_match() {
        let a = access();
        assert_eq!(
            a.check(
                "SELECT key FROM system_config WHERE key = $1 AND value = $2",
                1
            ),
            Err(AccessError::ParamCount { used: 2, given: 1 })
        );
        // the cached verdict still checks the count
        a.check(
            "SELECT key FROM system_config WHERE key = $1 AND value = $2",
            2,
        )
        .unwrap();
    }
}

#[cfg(test)]
#[path = "table_access_props.rs"]
mod props;
