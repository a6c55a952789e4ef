//! The table sandbox's own check (`valhalla::storage::table_access`), the parser-level first
//! error in front of the database's authorizer and roles.

use arbitrary::Arbitrary;
use valhalla::storage::table_access::{AccessError, TableAccess};

/// A statement: free text, or one put together from SQL's pieces so the parser gets far.
#[derive(Debug, Arbitrary)]
pub enum Sql {
    Text(String),
    Pieces(Vec<Piece>),
}

#[derive(Debug, Arbitrary)]
pub enum Piece {
    Keyword(u8),
    Table(u8),
    Ident(String),
    Literal(String),
    Param(u8),
    Punct(u8),
}

const KEYWORDS: &[&str] = &[
    "SELECT",
    "INSERT INTO",
    "UPDATE",
    "DELETE FROM",
    "FROM",
    "WHERE",
    "VALUES",
    "SET",
    "WITH",
    "AS",
    "JOIN",
    "UNION",
    "RETURNING",
    "ON CONFLICT",
    "DO UPDATE",
    "ATTACH",
    "PRAGMA",
    "CREATE",
    "DROP",
    "IN",
    "EXISTS",
    "LIMIT",
    "ORDER BY",
    "GROUP BY",
    "CASE WHEN",
    "THEN",
    "END",
    "NOT",
    "AND",
    "OR",
    "--",
    "/*",
    "*/",
    "load_extension(",
    "pg_read_file(",
    "set_config(",
    "count(*)",
];
const TABLES: &[&str] = &[
    "items",
    "ITEMS",
    "\"items\"",
    "other",
    "main.items",
    "sqlite_master",
    "pg_user",
    "valhalla_migrations",
    "public.items",
    "x",
];
const PUNCT: &[&str] = &[
    "(", ")", ",", ";", "*", "=", ".", "'", "\"", " ", "\n", "||", "::",
];

impl Sql {
    pub fn text(&self) -> String {
        match self {
            Sql::Text(t) => t.clone(),
            Sql::Pieces(pieces) => pieces
                .iter()
                .map(|p| match p {
                    Piece::Keyword(i) => KEYWORDS[*i as usize % KEYWORDS.len()].to_string(),
                    Piece::Table(i) => TABLES[*i as usize % TABLES.len()].to_string(),
                    Piece::Ident(s) => s.clone(),
                    Piece::Literal(s) => format!("'{}'", s.replace('\'', "''")),
                    Piece::Param(n) => format!("${}", n % 8),
                    Piece::Punct(i) => PUNCT[*i as usize % PUNCT.len()].to_string(),
                })
                .collect::<Vec<_>>()
                .join(" "),
        }
    }
}

/// Check `sql` with `given` parameters against a pack owning only `items`.
pub fn check(sql: &str, given: usize) {
    let access = TableAccess::new(["items".to_string()]);
    let first = access.check(sql, given);
    // the cached verdict is the fresh one
    assert_eq!(access.check(sql, given), first, "{sql:?}");
    let fresh = TableAccess::new(["items".to_string()]).check(sql, given);
    assert_eq!(fresh, first, "{sql:?}");
    match &first {
        Ok(info) => {
            assert_eq!(info.params, given, "{sql:?}");
            // a statement allowed for `items` names no other table (only CTE names besides)
            let none = TableAccess::new(Vec::<String>::new()).check(sql, given);
            if let Err(AccessError::ForeignTable(t)) = &none {
                let t = t.trim_matches('"').to_ascii_lowercase();
                assert_eq!(t, "items", "{sql:?} was allowed naming {t}");
            }
        }
        Err(AccessError::ParamCount { used, given: g }) => {
            assert_eq!(*g, given);
            // with the right count the same statement passes
            assert!(access.check(sql, *used).is_ok(), "{sql:?}");
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}
