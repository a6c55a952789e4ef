//! Rows of one table as one struct: a [`Record`] names its table and the fields stored under
//! another column name, and [`find`], [`select`], [`insert`], [`upsert`], [`update`] and
//! [`list`] write the column lists (`subject_key AS "key"` where a query answers, `subject_key`
//! where a row is written) from the struct's fields.

use crate::alloc_prelude::*;

use serde::de::DeserializeOwned;

use super::{Filter, List, Value, field_names, list_page_with, query_as, query_one_as};
use crate::extract::Json;
use crate::problem::Problem;
use crate::request::Page;

/// A struct read from (and written to) the rows of [`TABLE`](Record::TABLE), a field per
/// column. A field whose column has another name (a word SQL reserves, a seed's name) is
/// listed in [`RENAMED`](Record::RENAMED), so the struct keeps its field name in JSON and in
/// the cache while the SQL uses the column.
pub trait Record: DeserializeOwned {
    /// The table.
    const TABLE: &'static str;
    /// `(field, column)` for each field stored under another column name.
    const RENAMED: &'static [(&'static str, &'static str)] = &[];
    /// What a row is called in the 404 of [`get`]: ``no {WHAT} `{value}` ``.
    const WHAT: &'static str = Self::TABLE;
}

fn column_of<T: Record>(field: &str) -> Option<&'static str> {
    T::RENAMED.iter().find(|(f, _)| *f == field).map(|(_, c)| *c)
}

/// The select list of `T`: `id, subject_key AS "key", …`, for `SELECT` and `RETURNING`.
pub fn select_list<T: Record>() -> String {
    let list = field_names::<T>().iter().map(|f| match column_of::<T>(f) {
        Some(column) => format!("{column} AS \"{f}\""),
        None => (*f).to_string(),
    });
    list.collect::<Vec<_>>().join(", ")
}

/// The stored columns of `T`, in field order: `id, subject_key, …`, for `INSERT INTO t (…)`.
pub fn stored_columns<T: Record>() -> String {
    let list = field_names::<T>().iter().map(|f| column_of::<T>(f).unwrap_or(f));
    list.collect::<Vec<_>>().join(", ")
}

/// `SELECT {select_list} FROM {TABLE} {rest}`: e.g. `select::<T>("WHERE a = $1 ORDER BY b", …)`.
pub fn select<T: Record>(rest: &str, params: Vec<Value>) -> Result<Vec<T>, Problem> {
    query_as(&select_sql::<T>(rest), params)
}

fn select_sql<T: Record>(rest: &str) -> String {
    format!("SELECT {} FROM {} {rest}", select_list::<T>(), T::TABLE)
}

/// The row whose `column` (a column name from the pack's code) is `value`, if there is one.
pub fn find<T: Record>(column: &str, value: &str) -> Result<Option<T>, Problem> {
    query_one_as(&select_sql::<T>(&format!("WHERE {column} = $1")), crate::params![value])
}

/// The row whose `column` is `value`, or a 404 ``no {WHAT} `{value}` ``.
pub fn get<T: Record>(column: &str, value: &str) -> Result<T, Problem> {
    find(column, value)?.ok_or_else(|| not_found::<T>(value))
}

/// The 404 for a `T` that is not there: ``no {WHAT} `{value}` ``.
pub fn not_found<T: Record>(value: &str) -> Problem {
    Problem::not_found(format!("no {} `{value}`", T::WHAT))
}

/// `INSERT INTO {TABLE} ({stored_columns}) VALUES ($1, …, $N)`, one parameter per field in
/// field order, then `tail` (an `ON CONFLICT …` clause, or nothing).
fn insert_sql<T: Record>(tail: &str) -> String {
    let n = field_names::<T>().len();
    let values: Vec<String> = (1..=n).map(|i| format!("${i}")).collect();
    let (table, columns, returning) = (T::TABLE, stored_columns::<T>(), select_list::<T>());
    let values = values.join(", ");
    let tail = if tail.is_empty() { String::new() } else { format!(" {tail}") };
    format!("INSERT INTO {table} ({columns}) VALUES ({values}){tail} RETURNING {returning}")
}

/// Insert one row, a parameter per field of `T` in field order, and answer it as stored.
pub fn insert<T: Record>(params: Vec<Value>) -> Result<T, Problem> {
    super::returning(&insert_sql::<T>(""), params)
}

/// [`insert`] with an `ON CONFLICT …` clause, which may use parameters after the fields'
/// (`$N+1`…): the row as stored, or `None` when the clause (`DO UPDATE … WHERE …`) wrote
/// none.
pub fn upsert<T: Record>(on_conflict: &str, params: Vec<Value>) -> Result<Option<T>, Problem> {
    query_one_as(&insert_sql::<T>(on_conflict), params)
}

/// `UPDATE {TABLE} SET {set_where} RETURNING …`, e.g. `update::<T>("a = $2 WHERE id = $1",
/// …)`: the changed row, or `None` when none matched.
pub fn update<T: Record>(set_where: &str, params: Vec<Value>) -> Result<Option<T>, Problem> {
    let sql = format!("UPDATE {} SET {set_where} RETURNING {}", T::TABLE, select_list::<T>());
    query_one_as(&sql, params)
}

/// One page of `T`'s rows matching `filter` (whose columns are the stored names), ordered by
/// `order_by`.
pub fn list<T: Record>(
    filter: &Filter,
    order_by: &str,
    page: Page,
) -> Result<Json<List<T>>, Problem> {
    list_page_with(T::TABLE, &select_list::<T>(), filter, order_by, page)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Rule {
        id: String,
        key: String,
        group: Option<String>,
        max: i64,
    }

    impl Record for Rule {
        const TABLE: &'static str = "rules";
        const RENAMED: &'static [(&'static str, &'static str)] =
            &[("key", "subject_key"), ("group", "flag_group")];
        const WHAT: &'static str = "rate-limit rule";
    }

    #[test]
    fn renamed_fields_are_aliased_where_read_and_stored_under_their_column() {
        assert_eq!(
            select_list::<Rule>(),
            r#"id, subject_key AS "key", flag_group AS "group", max"#
        );
        assert_eq!(stored_columns::<Rule>(), "id, subject_key, flag_group, max");
        assert_eq!(
            select_sql::<Rule>("WHERE id = $1"),
            r#"SELECT id, subject_key AS "key", flag_group AS "group", max FROM rules WHERE id = $1"#
        );
    }

    #[test]
    fn an_insert_takes_a_parameter_per_field_and_returns_the_row() {
        let returning = r#"RETURNING id, subject_key AS "key", flag_group AS "group", max"#;
        assert_eq!(
            insert_sql::<Rule>(""),
            format!(
                "INSERT INTO rules (id, subject_key, flag_group, max) VALUES ($1, $2, $3, $4) {returning}"
            )
        );
        assert_eq!(
            insert_sql::<Rule>("ON CONFLICT (id) DO NOTHING"),
            format!(
                "INSERT INTO rules (id, subject_key, flag_group, max) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (id) DO NOTHING {returning}"
            )
        );
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Plain {
        id: String,
    }

    impl Record for Plain {
        const TABLE: &'static str = "plain";
    }

    #[test]
    fn a_record_without_renames_lists_its_fields() {
        assert_eq!(select_list::<Plain>(), "id");
        assert_eq!(stored_columns::<Plain>(), "id");
    }

    #[test]
    fn not_found_names_the_row_by_what_it_is() {
        let p = not_found::<Rule>("r1");
        assert_eq!((p.status, p.detail.as_str()), (404, "no rate-limit rule `r1`"));
        assert_eq!(not_found::<Plain>("x").detail, "no plain `x`");
    }
}
