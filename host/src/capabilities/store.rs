//! `store`: parameterised SQL on the pack's own tables. The host's SQL check gives the first,
//! friendly refusal; the database then enforces the sandbox itself (SQLite's authorizer, the
//! pack's PostgreSQL role), within the call's deadline. Database errors reach the guest as
//! typed WIT errors, with internals kept in the host log.

use crate::runtime::State;
use crate::runtime::bindings::CapabilityError;
use crate::runtime::bindings::valhalla::pack::store::{Host, Rows, Statement, Value};
use crate::storage::table_access::StatementInfo;
use crate::storage::{self, Access, Caller, SqlValue, StorageError};

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

    /// Who the statements are for: this pack, until this call's deadline.
    fn caller(&self) -> Caller {
        Caller::pack(std::sync::Arc::clone(&self.pack.sandbox), self.deadline)
    }

    fn storage_error(&self, e: StorageError) -> CapabilityError {
        match e {
            StorageError::Denied(m) => {
                tracing::warn!(pack = %self.pack.name, request_id = %self.call.request_id, error = %m, "the database refused a statement");
                CapabilityError::AccessDenied(format!("refused by the table sandbox: {m}"))
            }
            StorageError::Deadline => CapabilityError::Unavailable(
                "the statement ran past the call's deadline and was stopped".into(),
            ),
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

/// `work` on the database, given up when the call's deadline passes (the database stops the
/// statement there too).
async fn within<T>(
    deadline: std::time::Instant,
    work: impl Future<Output = Result<T, StorageError>>,
) -> Result<T, StorageError> {
    match tokio::time::timeout_at(deadline.into(), work).await {
        Ok(result) => result,
        Err(_) => Err(StorageError::Deadline),
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
        let (caller, pack) = (self.caller(), std::sync::Arc::clone(&self.pack));
        let db = &pack.services.db;
        let rows = within(self.deadline, db.query(&caller, &sql, &params, access))
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
        let (caller, pack) = (self.caller(), std::sync::Arc::clone(&self.pack));
        let db = &pack.services.db;
        within(self.deadline, db.execute(&caller, &sql, &params))
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
        let (caller, pack) = (self.caller(), std::sync::Arc::clone(&self.pack));
        let db = &pack.services.db;
        within(self.deadline, db.batch(&caller, &checked))
            .await
            .map_err(|e| self.storage_error(e))
    }
}
