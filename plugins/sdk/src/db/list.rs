//! Filtered, paged list queries: a `WHERE` built from optional filters and the
//! `{"total", "items"}` page every list endpoint answers.

use crate::alloc_prelude::*;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{ToValue, Value, columns, query_as, query_scalar};
use crate::extract::Json;
use crate::problem::Problem;
use crate::request::Page;
use crate::schema::JsonSchema;

/// A `WHERE` clause built from optional filters, numbering its `$N` parameters. Column names
/// come from the pack's code, values only ever as parameters.
#[derive(Default)]
pub struct Filter {
    clauses: Vec<String>,
    params: Vec<Value>,
}

impl Filter {
    /// No filter yet: every row.
    pub fn new() -> Self {
        Self::default()
    }

    /// `column <op> $N` when `value` is present; `op` is one of `=`, `<`, `<=`, `>`, `>=`.
    pub fn push<V: ToValue>(
        &mut self,
        column: &'static str,
        op: &'static str,
        value: Option<V>,
    ) -> &mut Self {
        if let Some(v) = value {
            self.params.push(v.to_value());
            self.clauses.push(format!("{column} {op} ${}", self.params.len()));
        }
        self
    }

    /// `column = $N` when `value` is present.
    pub fn eq<V: ToValue>(&mut self, column: &'static str, value: Option<V>) -> &mut Self {
        self.push(column, "=", value)
    }

    /// A clause of the pack's own, its parameters numbered from the `$N` it is given:
    /// `filter.raw(|n| format!("(a = ${n} OR b > ${})", n + 1), params![x, y])`.
    pub fn raw(&mut self, clause: impl FnOnce(usize) -> String, values: Vec<Value>) -> &mut Self {
        self.clauses.push(clause(self.next_param()));
        self.params.extend(values);
        self
    }

    /// ` WHERE a = $1 AND b >= $2`, or nothing.
    pub fn sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.clauses.join(" AND "))
        }
    }

    /// The parameters, plus `extra` numbered after them (e.g. limit and offset).
    pub fn params(&self, extra: Vec<Value>) -> Vec<Value> {
        let mut all = self.params.clone();
        all.extend(extra);
        all
    }

    /// The `$N` the next extra parameter gets.
    pub fn next_param(&self) -> usize {
        self.params.len() + 1
    }
}

/// A page of a list: `{"total": N, "items": [...]}`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct List<T> {
    /// every item matching the filter, on all pages
    pub total: i64,
    /// this page's items
    pub items: Vec<T>,
}

/// One page of `table` (rows matching `filter`, ordered by `order_by`), each row decoded
/// into `T` from the columns `T` names.
pub fn list_page<T: DeserializeOwned>(
    table: &str,
    filter: &Filter,
    order_by: &str,
    page: Page,
) -> Result<Json<List<T>>, Problem> {
    list_page_with(table, &columns::<T>(), filter, order_by, page)
}

/// [`list_page`] with the select list spelled out, for a `T` whose fields are not all plain
/// columns (`flag_group AS "group"`).
pub fn list_page_with<T: DeserializeOwned>(
    table: &str,
    columns: &str,
    filter: &Filter,
    order_by: &str,
    page: Page,
) -> Result<Json<List<T>>, Problem> {
    let (count_sql, page_sql) = page_queries(table, columns, filter, order_by);
    let total = query_scalar(&count_sql, filter.params(vec![]))?;
    let items = query_as(&page_sql, filter.params(crate::params![page.limit, page.offset]))?;
    Ok(Json(List { total, items }))
}

/// The `COUNT(*)` and the page `SELECT` of a list, the page's limit and offset numbered after
/// the filter's parameters.
fn page_queries(table: &str, columns: &str, filter: &Filter, order_by: &str) -> (String, String) {
    let where_sql = filter.sql();
    let n = filter.next_param();
    let count = format!("SELECT COUNT(*) FROM {table}{where_sql}");
    let page = format!(
        "SELECT {columns} FROM {table}{where_sql} ORDER BY {order_by} LIMIT ${n} OFFSET ${}",
        n + 1
    );
    (count, page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_numbers_its_limit_and_offset_after_the_filter() {
        let mut filter = Filter::new();
        filter.eq("flag_group", Some("ui")).eq("kind", None::<&str>);
        let (count, page) = page_queries("t", r#"id, g AS "group""#, &filter, "id");
        assert_eq!(count, "SELECT COUNT(*) FROM t WHERE flag_group = $1");
        let want = r#"SELECT id, g AS "group" FROM t WHERE flag_group = $1 ORDER BY id LIMIT $2 OFFSET $3"#;
        assert_eq!(page, want);
        filter.raw(|n| format!("(x = ${n} OR y > ${})", n + 1), crate::params![1, 2]);
        assert_eq!(filter.sql(), " WHERE flag_group = $1 AND (x = $2 OR y > $3)");
        assert_eq!(filter.next_param(), 4);
    }
}
