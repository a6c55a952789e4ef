//! Typed, parameterised SQL through the host's `store`: `$1..$N` parameters built with
//! [`params!`](crate::params), rows read by column name.

use crate::alloc_prelude::*;

use alloc::rc::Rc;

use crate::bindings::valhalla::pack::store;
use crate::bindings::valhalla::pack::types::Error as StoreError;
use crate::log;
use crate::problem::Problem;

pub use store::{Statement, Value};

/// Converts a Rust value into a typed SQL parameter.
pub trait ToValue {
    fn to_value(&self) -> Value;
}

macro_rules! to_value {
    ($($t:ty => $variant:ident via $conv:expr),* $(,)?) => {$(
        impl ToValue for $t {
            fn to_value(&self) -> Value { Value::$variant(Some($conv(self))) }
        }
        impl ToValue for Option<$t> {
            fn to_value(&self) -> Value { Value::$variant(self.as_ref().map($conv)) }
        }
    )*};
}

to_value! {
    bool => Boolean via |v: &bool| *v,
    i64 => Int via |v: &i64| *v,
    i32 => Int via |v: &i32| i64::from(*v),
    u32 => Int via |v: &u32| i64::from(*v),
    f64 => Float via |v: &f64| *v,
    String => Text via |v: &String| v.clone(),
    Vec<u8> => Blob via |v: &Vec<u8>| v.clone(),
}

impl ToValue for &str {
    fn to_value(&self) -> Value {
        Value::Text(Some((*self).to_string()))
    }
}

impl ToValue for Option<&str> {
    fn to_value(&self) -> Value {
        Value::Text(self.map(str::to_string))
    }
}

impl ToValue for Value {
    fn to_value(&self) -> Value {
        self.clone()
    }
}

/// `params![a, b, c]`: the typed parameters `$1, $2, $3`.
#[macro_export]
macro_rules! params {
    ($($value:expr),* $(,)?) => {
        vec![$($crate::db::ToValue::to_value(&$value)),*]
    };
}

/// A `WHERE` clause built from optional filters, numbering its `$N` parameters. Column names
/// come from the pack's code, values only ever as parameters.
#[derive(Default)]
pub struct Filter {
    clauses: Vec<String>,
    params: Vec<Value>,
}

impl Filter {
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
            self.clauses
                .push(format!("{column} {op} ${}", self.params.len()));
        }
        self
    }

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

/// A list answer, `{"total": N, "items": [...]}`: one page of `table` (rows matching
/// `filter`, ordered by `order_by`), each row turned into an item by `item`.
pub fn list_page<T: serde::Serialize>(
    table: &str,
    columns: &str,
    filter: &Filter,
    order_by: &str,
    page: crate::request::Page,
    item: impl Fn(&Row) -> Result<T, Problem>,
) -> Result<crate::response::Response, Problem> {
    let where_sql = filter.sql();
    let total = query_scalar(
        &format!("SELECT COUNT(*) FROM {table}{where_sql}"),
        filter.params(vec![]),
    )?;
    let n = filter.next_param();
    let sql = format!(
        "SELECT {columns} FROM {table}{where_sql} ORDER BY {order_by} LIMIT ${n} OFFSET ${}",
        n + 1
    );
    let items = query(&sql, filter.params(crate::params![page.limit, page.offset]))?
        .iter()
        .map(item)
        .collect::<Result<Vec<_>, _>>()?;
    crate::response::Response::ok(&serde_json::json!({ "total": total, "items": items }))
}

/// A result row; read columns by name.
pub struct Row {
    /// The query's column names, shared by its rows. A handful of names are found faster by
    /// a scan than by hashing, and a `HashMap` would ask WASI for random keys in every
    /// fresh instance.
    columns: Rc<[String]>,
    values: Vec<Value>,
}

impl Row {
    fn value(&self, column: &str) -> Result<&Value, Problem> {
        self.columns
            .iter()
            .position(|c| c == column)
            .and_then(|i| self.values.get(i))
            .ok_or_else(|| Problem::internal(format!("query has no column `{column}`")))
    }

    fn mismatch(column: &str, wanted: &str) -> Problem {
        Problem::internal(format!("column `{column}` is not {wanted}"))
    }

    pub fn opt_text(&self, column: &str) -> Result<Option<String>, Problem> {
        match self.value(column)? {
            Value::Text(v) => Ok(v.clone()),
            Value::Int(v) => Ok(v.map(|n| n.to_string())),
            Value::Float(v) => Ok(v.map(|n| n.to_string())),
            Value::Boolean(v) => Ok(v.map(|b| b.to_string())),
            Value::Blob(v) => match v {
                None => Ok(None),
                Some(b) => String::from_utf8(b.clone())
                    .map(Some)
                    .map_err(|_| Self::mismatch(column, "text")),
            },
        }
    }

    pub fn text(&self, column: &str) -> Result<String, Problem> {
        self.opt_text(column)?
            .ok_or_else(|| Self::mismatch(column, "a non-null text"))
    }

    pub fn opt_int(&self, column: &str) -> Result<Option<i64>, Problem> {
        match self.value(column)? {
            Value::Int(v) => Ok(*v),
            Value::Boolean(v) => Ok(v.map(i64::from)),
            Value::Text(Some(s)) => s
                .parse()
                .map(Some)
                .map_err(|_| Self::mismatch(column, "an integer")),
            Value::Text(None) | Value::Float(None) | Value::Blob(None) => Ok(None),
            _ => Err(Self::mismatch(column, "an integer")),
        }
    }

    pub fn int(&self, column: &str) -> Result<i64, Problem> {
        self.opt_int(column)?
            .ok_or_else(|| Self::mismatch(column, "a non-null integer"))
    }

    pub fn opt_float(&self, column: &str) -> Result<Option<f64>, Problem> {
        match self.value(column)? {
            Value::Float(v) => Ok(*v),
            Value::Int(v) => Ok(v.map(|n| n as f64)),
            Value::Text(Some(s)) => s
                .parse()
                .map(Some)
                .map_err(|_| Self::mismatch(column, "a number")),
            Value::Text(None) | Value::Boolean(None) | Value::Blob(None) => Ok(None),
            _ => Err(Self::mismatch(column, "a number")),
        }
    }

    /// Booleans: SQLite answers integers, PostgreSQL booleans; both read the same.
    pub fn opt_bool(&self, column: &str) -> Result<Option<bool>, Problem> {
        match self.value(column)? {
            Value::Boolean(v) => Ok(*v),
            Value::Int(v) => Ok(v.map(|n| n != 0)),
            Value::Text(None) | Value::Float(None) | Value::Blob(None) => Ok(None),
            _ => Err(Self::mismatch(column, "a boolean")),
        }
    }

    pub fn bool(&self, column: &str) -> Result<bool, Problem> {
        self.opt_bool(column)?
            .ok_or_else(|| Self::mismatch(column, "a non-null boolean"))
    }
}

fn rows_of(result: store::Rows) -> Vec<Row> {
    let columns: Rc<[String]> = result.columns.into();
    result
        .rows
        .into_iter()
        .map(|values| Row {
            columns: Rc::clone(&columns),
            values,
        })
        .collect()
}

/// A store error as the client sees it: conflicts are 409, the rest a 500; database details
/// stay in the log.
pub fn problem_from(err: StoreError) -> Problem {
    match err {
        StoreError::Conflict(detail) => {
            log::info(&format!("store conflict: {detail}"));
            Problem::conflict("the change conflicts with existing data")
        }
        StoreError::NotFound(detail) => Problem::not_found(detail),
        StoreError::Unavailable(detail) => {
            log::warn(&format!("store unavailable: {detail}"));
            Problem::unavailable("the database is unavailable, try again")
        }
        StoreError::AccessDenied(detail)
        | StoreError::Invalid(detail)
        | StoreError::Internal(detail) => {
            log::error(&format!("store error: {detail}"));
            Problem::internal("a storage error occurred")
        }
    }
}

/// Rows of a query.
pub fn query(sql: &str, params: Vec<Value>) -> Result<Vec<Row>, Problem> {
    store::query(sql, &params)
        .map(rows_of)
        .map_err(problem_from)
}

/// The first row of a query, if any.
pub fn query_one(sql: &str, params: Vec<Value>) -> Result<Option<Row>, Problem> {
    Ok(query(sql, params)?.into_iter().next())
}

/// The first column of the first row as an integer (`SELECT COUNT(*) ...`).
pub fn query_scalar(sql: &str, params: Vec<Value>) -> Result<i64, Problem> {
    let result = store::query(sql, &params).map_err(problem_from)?;
    match result.rows.first().and_then(|r| r.first()) {
        Some(Value::Int(Some(n))) => Ok(*n),
        Some(Value::Text(Some(s))) => s
            .parse()
            .map_err(|_| Problem::internal("scalar is not an integer")),
        _ => Err(Problem::internal("query returned no scalar")),
    }
}

/// Rows affected by a statement.
pub fn execute(sql: &str, params: Vec<Value>) -> Result<u64, Problem> {
    store::execute(sql, &params).map_err(problem_from)
}

/// Statements run atomically; rows affected per statement.
pub fn batch(statements: Vec<Statement>) -> Result<Vec<u64>, Problem> {
    store::batch(&statements).map_err(problem_from)
}

/// A statement for [`batch`].
pub fn statement(sql: &str, params: Vec<Value>) -> Statement {
    Statement {
        sql: sql.to_string(),
        params,
    }
}
