//! `store`: parameterised SQL on the pack's own tables. The statement is checked against the
//! pack's table sandbox first; database errors reach the guest as typed WIT errors, with
//! internals kept in the host log.

use crate::runtime::State;
use crate::runtime::bindings::CapabilityError;
use crate::runtime::bindings::valhalla::pack::store::{Host, Rows, Statement, Value};
use crate::storage::table_access::StatementInfo;
use crate::storage::{self, Access, SqlValue, StorageError};

fn to_sql(v: Value) -> SqlValue {
    match v {
        Value::Boolean(b) => SqlValue::Boolean(b),
        Value::Int(i) => SqlValue::Int(i),
        Value::Float(f) => SqlValue::Float(f),
        Value::Text(t) => SqlValue::Text(t),
        Value::Blob(b) => SqlValue::Blob(b),
    }
}

fn from_sql(v: SqlValue) -> Value {
    match v {
        SqlValue::Boolean(b) => Value::Boolean(b),
        SqlValue::Int(i) => Value::Int(i),
        SqlValue::Float(f) => Value::Float(f),
        SqlValue::Text(t) => Value::Text(t),
        SqlValue::Blob(b) => Value::Blob(b),
    }
}

impl State {
    fn check_sql(&self, sql: &str, params: usize) -> Result<StatementInfo, CapabilityError> {
        self.pack.tables.check(sql, params).map_err(|e| {
            tracing::warn!(pack = %self.pack.name, request_id = %self.call.request_id, error = %e, "statement refused");
            match e {
                storage::table_access::AccessError::ForeignTable(_)
                | storage::table_access::AccessError::Function(_)
                | storage::table_access::AccessError::NotDml => CapabilityError::AccessDenied(e.to_string()),
                _ => CapabilityError::Invalid(e.to_string()),
            }
        })
    }

    fn storage_error(&self, e: StorageError) -> CapabilityError {
        match e {
            StorageError::Conflict(m) => CapabilityError::Conflict(m),
            StorageError::Invalid(m) => CapabilityError::Invalid(m),
            StorageError::Unavailable(m) => {
                tracing::warn!(pack = %self.pack.name, request_id = %self.call.request_id, error = %m, "database unavailable");
                CapabilityError::Unavailable("the database is unavailable".into())
            }
            StorageError::Internal(m) => {
                tracing::error!(pack = %self.pack.name, request_id = %self.call.request_id, error = %m, "database error");
                CapabilityError::Internal("database error (details in the host log)".into())
            }
        }
    }
}

impl Host for State {
    async fn query(&mut self, sql: String, params: Vec<Value>) -> Result<Rows, CapabilityError> {
        let info = self.check_sql(&sql, params.len())?;
        let access = if info.read_only {
            Access::Read
        } else {
            Access::Write
        };
        let params: Vec<SqlValue> = params.into_iter().map(to_sql).collect();
        let rows = self
            .pack
            .services
            .db
            .query(&sql, &params, access)
            .await
            .map_err(|e| self.storage_error(e))?;
        Ok(Rows {
            columns: rows.columns,
            rows: rows
                .rows
                .into_iter()
                .map(|r| r.into_iter().map(from_sql).collect())
                .collect(),
        })
    }

    async fn execute(&mut self, sql: String, params: Vec<Value>) -> Result<u64, CapabilityError> {
        self.check_sql(&sql, params.len())?;
        let params: Vec<SqlValue> = params.into_iter().map(to_sql).collect();
        self.pack
            .services
            .db
            .execute(&sql, &params)
            .await
            .map_err(|e| self.storage_error(e))
    }

    async fn batch(&mut self, statements: Vec<Statement>) -> Result<Vec<u64>, CapabilityError> {
        let mut checked = Vec::with_capacity(statements.len());
        for s in statements {
            self.check_sql(&s.sql, s.params.len())?;
            checked.push(storage::Statement {
                sql: s.sql,
                params: s.params.into_iter().map(to_sql).collect(),
            });
        }
        self.pack
            .services
            .db
            .batch(&checked)
            .await
            .map_err(|e| self.storage_error(e))
    }
}
