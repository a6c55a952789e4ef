//! The table sandbox's check under generated SQL (the property of the `sql_sandbox` fuzz
//! target, `fuzz/src/sql.rs`, on stable): never a panic, the cached verdict is the fresh one,
//! a parameter count off by some is that and only that, and a statement allowed for a pack
//! that owns `items` names no other table.

use proptest::prelude::*;

use super::{AccessError, TableAccess};

const PIECES: &[&str] = &[
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
    "items",
    "ITEMS",
    "\"items\"",
    "other",
    "main.items",
    "sqlite_master",
    "valhalla_migrations",
    "x",
    "$1",
    "$2",
    "$7",
    "'a'",
    "1",
    "(",
    ")",
    ",",
    ";",
    "*",
    "=",
    ".",
    "'",
    "\"",
];

/// SQL put together from its pieces, or free text.
fn sql() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(prop::sample::select(PIECES), 0..24).prop_map(|p| p.join(" ")),
        any::<String>(),
        Just("SELECT key FROM items WHERE key = $1".to_string()),
        Just("WITH t AS (SELECT 1 FROM items) SELECT * FROM t".to_string()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn the_check_is_total_cached_and_confined(sql in sql(), given in 0usize..10) {
        let access = TableAccess::new(["items".to_string()]);
        let first = access.check(&sql, given);
        prop_assert_eq!(&access.check(&sql, given), &first);
        prop_assert_eq!(&TableAccess::new(["items".to_string()]).check(&sql, given), &first);
        match &first {
            Ok(info) => {
                prop_assert_eq!(info.params, given);
                let none = TableAccess::new(Vec::<String>::new()).check(&sql, given);
                if let Err(AccessError::ForeignTable(t)) = none {
                    prop_assert_eq!(t.trim_matches('"').to_ascii_lowercase(), "items");
                }
            }
            Err(AccessError::ParamCount { used, given: g }) => {
                prop_assert_eq!(*g, given);
                prop_assert!(access.check(&sql, *used).is_ok());
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }
}
