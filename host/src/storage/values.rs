//! Typed SQL values: binding them to sqlx queries and decoding rows of either engine into them.

use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{Column, Postgres, Row, Sqlite, TypeInfo, ValueRef};

use super::StorageError;

/// A typed value; `None` is SQL NULL of that type.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    Boolean(Option<bool>),
    Int(Option<i64>),
    Float(Option<f64>),
    Text(Option<String>),
    Blob(Option<Vec<u8>>),
}

/// A statement of a batch.
#[derive(Debug, Clone)]
pub struct Statement {
    pub sql: String,
    pub params: Vec<SqlValue>,
}

/// A query's result.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rows {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<SqlValue>>,
}

macro_rules! bind_all {
    ($query:expr, $params:expr) => {{
        let mut q = $query;
        for p in $params {
            q = match p {
                SqlValue::Boolean(v) => q.bind(*v),
                SqlValue::Int(v) => q.bind(*v),
                SqlValue::Float(v) => q.bind(*v),
                SqlValue::Text(v) => q.bind(v.as_deref()),
                SqlValue::Blob(v) => q.bind(v.as_deref()),
            };
        }
        q
    }};
}

pub fn sqlite_query<'q>(
    sql: &'q str,
    params: &'q [SqlValue],
) -> Query<'q, Sqlite, SqliteArguments<'q>> {
    bind_all!(sqlx::query(sql), params)
}

pub fn pg_query<'q>(sql: &'q str, params: &'q [SqlValue]) -> Query<'q, Postgres, PgArguments> {
    bind_all!(sqlx::query(sql), params)
}

fn column_names<R: Row>(row: &R) -> Vec<String> {
    row.columns().iter().map(|c| c.name().to_string()).collect()
}

/// What a SQLite column's declared type says about its values, by SQLite's affinity rules
/// plus BOOLEAN (stored as an integer): it tells booleans from integers and types NULLs. An
/// expression column declares nothing and reads as text when NULL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Declared {
    Boolean,
    Int,
    Float,
    Blob,
    Text,
}

impl Declared {
    pub fn of(decl: &str) -> Self {
        let d = decl.to_ascii_uppercase();
        if d == "BOOLEAN" || d == "BOOL" {
            Self::Boolean
        } else if d.contains("INT") {
            Self::Int
        } else if d.contains("CHAR") || d.contains("CLOB") || d.contains("TEXT") {
            Self::Text
        } else if d.contains("BLOB") {
            Self::Blob
        } else if d.contains("REAL") || d.contains("FLOA") || d.contains("DOUB") {
            Self::Float
        } else {
            Self::Text
        }
    }

    /// SQL NULL of this column's kind.
    pub fn null(self) -> SqlValue {
        match self {
            Self::Boolean => SqlValue::Boolean(None),
            Self::Int => SqlValue::Int(None),
            Self::Float => SqlValue::Float(None),
            Self::Blob => SqlValue::Blob(None),
            Self::Text => SqlValue::Text(None),
        }
    }

    /// A stored integer: a boolean in a BOOLEAN column, else an integer.
    pub fn integer(self, n: i64) -> SqlValue {
        match self {
            Self::Boolean => SqlValue::Boolean(Some(n != 0)),
            _ => SqlValue::Int(Some(n)),
        }
    }
}

/// SQLite reports the storage class of each value; the declared column type (when the column
/// is a plain column) tells booleans from integers and types NULLs.
pub fn decode_sqlite(rows: Vec<SqliteRow>) -> Result<Rows, StorageError> {
    let Some(first) = rows.first() else {
        return Ok(Rows::default());
    };
    let columns = column_names(first);
    let declared: Vec<Declared> = first
        .columns()
        .iter()
        .map(|c| Declared::of(c.type_info().name()))
        .collect();
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let mut values = Vec::with_capacity(columns.len());
        for (i, decl) in declared.iter().enumerate() {
            let raw = row.try_get_raw(i)?;
            let value = if raw.is_null() {
                decl.null()
            } else {
                match raw.type_info().name() {
                    "INTEGER" | "BOOLEAN" | "INT8" => decl.integer(row.try_get(i)?),
                    "REAL" => SqlValue::Float(Some(row.try_get(i)?)),
                    "BLOB" => SqlValue::Blob(Some(row.try_get(i)?)),
                    _ => SqlValue::Text(Some(row.try_get(i)?)),
                }
            };
            values.push(value);
        }
        out.push(values);
    }
    Ok(Rows { columns, rows: out })
}

/// PostgreSQL types each column; map them onto the five value kinds.
pub fn decode_pg(rows: Vec<PgRow>) -> Result<Rows, StorageError> {
    let Some(first) = rows.first() else {
        return Ok(Rows::default());
    };
    let columns = column_names(first);
    let types: Vec<String> = first
        .columns()
        .iter()
        .map(|c| c.type_info().name().to_string())
        .collect();
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let mut values = Vec::with_capacity(columns.len());
        for (i, ty) in types.iter().enumerate() {
            let value = match ty.as_str() {
                "BOOL" => SqlValue::Boolean(row.try_get(i)?),
                "INT8" => SqlValue::Int(row.try_get(i)?),
                "INT4" => SqlValue::Int(row.try_get::<Option<i32>, _>(i)?.map(i64::from)),
                "INT2" => SqlValue::Int(row.try_get::<Option<i16>, _>(i)?.map(i64::from)),
                "FLOAT8" => SqlValue::Float(row.try_get(i)?),
                "FLOAT4" => SqlValue::Float(row.try_get::<Option<f32>, _>(i)?.map(f64::from)),
                "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" | "CHAR" => SqlValue::Text(row.try_get(i)?),
                "BYTEA" => SqlValue::Blob(row.try_get(i)?),
                "UUID" => SqlValue::Text(
                    row.try_get::<Option<uuid::Uuid>, _>(i)?
                        .map(|u| u.to_string()),
                ),
                "JSON" | "JSONB" => SqlValue::Text(
                    row.try_get::<Option<serde_json::Value>, _>(i)?
                        .map(|v| v.to_string()),
                ),
                "TIMESTAMPTZ" => SqlValue::Text(
                    row.try_get::<Option<chrono::DateTime<chrono::Utc>>, _>(i)?
                        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
                ),
                other => {
                    return Err(StorageError::Invalid(format!(
                        "column `{}` has type {other}, which packs cannot read: cast it in SQL (e.g. CAST(x AS BIGINT))",
                        columns[i]
                    )));
                }
            };
            values.push(value);
        }
        out.push(values);
    }
    Ok(Rows { columns, rows: out })
}
