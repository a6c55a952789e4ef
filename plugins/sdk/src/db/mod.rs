//! Typed, parameterised SQL through the host's `store`: `$1..$N` parameters built with
//! [`params!`](crate::params), rows decoded into structs by column name
//! ([`query_as`], [`query_one_as`], [`returning`]) with the column list taken from the
//! struct ([`columns`]); a struct that is a table's row is a [`Record`] ([`find`], [`insert`],
//! [`list`] …); large tables page by keyset ([`cursor_page`]).

use crate::alloc_prelude::*;

use alloc::rc::Rc;

use serde::de::DeserializeOwned;

use crate::bindings::valhalla::pack::store;
use crate::bindings::valhalla::pack::types::Error as StoreError;
use crate::log;
use crate::problem::Problem;

mod cursor;
mod decode;
mod key_page;
mod keyset;
mod list;
mod purge;
mod record;

pub use cursor::{CursorList, CursorPage, cursor_page, cursor_page_with};
pub use decode::{DecodeError, field_names};
pub use key_page::{KeyList, KeyPage, key_page};
pub use keyset::{
    KeysetList, count_capped, cursor_after, decode_cursor, encode_cursor, keyset_rows,
    rows_and_cursor,
};
pub use list::{Filter, List, list_page, list_page_with};
pub use purge::{MAX_PURGE, PurgeRequest, Purged, purge_oldest};
pub use record::{
    Record, find, get, insert, list, not_found, select, select_list, stored_columns, update, upsert,
};
pub use store::{Statement, Value};

/// Converts a Rust value into a typed SQL parameter.
pub trait ToValue {
    /// The parameter.
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

/// A result row, for reading a column or two by name (`row.get::<bool>("active")`); most
/// code decodes whole rows with [`query_as`] instead.
pub struct Row {
    /// the query's column names, shared by all its rows
    columns: Rc<[String]>,
    values: Vec<Value>,
}

impl Row {
    /// A row of `values` under `columns` (as the store answers them).
    pub fn from_parts(columns: Vec<String>, values: Vec<Value>) -> Self {
        Self { columns: columns.into(), values }
    }

    /// Column `column` as `T` (`Option<T>` for a nullable one).
    pub fn get<T: DeserializeOwned>(&self, column: &str) -> Result<T, Problem> {
        let i = self
            .columns
            .iter()
            .position(|c| c == column)
            .ok_or_else(|| Problem::internal(format!("query has no column `{column}`")))?;
        T::deserialize(decode::Cell { column, value: &self.values[i] }).map_err(decode_problem)
    }

    /// The whole row as `T`, fields by column name.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, Problem> {
        T::deserialize(decode::RowDe { columns: &self.columns, values: &self.values })
            .map_err(decode_problem)
    }
}

fn decode_problem(err: DecodeError) -> Problem {
    Problem::internal(err.0)
}

/// `id, key, value, …`: the columns `T` is decoded from, for `SELECT {} FROM …` and
/// `RETURNING {}`.
pub fn columns<T: DeserializeOwned>() -> String {
    field_names::<T>().join(", ")
}

/// Rows of a query, each decoded into `T` by column name.
pub fn query_as<T: DeserializeOwned>(sql: &str, params: Vec<Value>) -> Result<Vec<T>, Problem> {
    let result = store::query(sql, &params).map_err(problem_from)?;
    result
        .rows
        .iter()
        .map(|values| {
            T::deserialize(decode::RowDe { columns: &result.columns, values })
                .map_err(decode_problem)
        })
        .collect()
}

/// The first row of a query as `T`, if there is one.
pub fn query_one_as<T: DeserializeOwned>(
    sql: &str,
    params: Vec<Value>,
) -> Result<Option<T>, Problem> {
    Ok(query_as(sql, params)?.into_iter().next())
}

/// The row an `INSERT … RETURNING` (or an `UPDATE` that must match) gives back, as `T`; no
/// row at all is a 500, since the statement itself said it writes one.
pub fn returning<T: DeserializeOwned>(sql: &str, params: Vec<Value>) -> Result<T, Problem> {
    query_one_as(sql, params)?.ok_or_else(|| Problem::internal("the statement returned no row"))
}

/// For `#[serde(deserialize_with = "db::comma_list")]`: a text column holding `a,b,c`.
pub fn comma_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let text: String = serde::Deserialize::deserialize(d)?;
    Ok(text.split(',').filter(|s| !s.is_empty()).map(String::from).collect())
}

/// For `#[serde(deserialize_with = "db::json_text")]`: a text column holding JSON (`NULL`
/// reads as JSON `null`).
pub fn json_text<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: DeserializeOwned,
{
    let text: Option<String> = serde::Deserialize::deserialize(d)?;
    serde_json::from_str(text.as_deref().unwrap_or("null")).map_err(serde::de::Error::custom)
}

/// For `#[serde(deserialize_with = "db::json_or_text")]`: a text column holding JSON, or
/// text written before it held JSON, which reads as that JSON string.
pub fn json_or_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<serde_json::Value, D::Error> {
    let text: String = serde::Deserialize::deserialize(d)?;
    Ok(serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
}

fn rows_of(result: store::Rows) -> Vec<Row> {
    let columns: Rc<[String]> = result.columns.into();
    result.rows.into_iter().map(|values| Row { columns: Rc::clone(&columns), values }).collect()
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
    store::query(sql, &params).map(rows_of).map_err(problem_from)
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
        Some(Value::Text(Some(s))) => {
            s.parse().map_err(|_| Problem::internal("scalar is not an integer"))
        }
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
    Statement { sql: sql.to_string(), params }
}
