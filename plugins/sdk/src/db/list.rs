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
    let columns = columns::<T>();
    let where_sql = filter.sql();
    let total =
        query_scalar(&format!("SELECT COUNT(*) FROM {table}{where_sql}"), filter.params(vec![]))?;
    let n = filter.next_param();
    let sql = format!(
        "SELECT {columns} FROM {table}{where_sql} ORDER BY {order_by} LIMIT ${n} OFFSET ${}",
        n + 1
    );
    let items = query_as(&sql, filter.params(crate::params![page.limit, page.offset]))?;
    Ok(Json(List { total, items }))
}
