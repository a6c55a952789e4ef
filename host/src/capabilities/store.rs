//! `store`: parameterised SQL on the pack's own tables. The host's SQL check gives the first,
//! friendly refusal; the database then enforces the sandbox itself (SQLite's authorizer, the
//! pack's PostgreSQL role), within the call's deadline. Database errors reach the guest as
//! typed WIT errors, with internals kept in the host log. In a recorded trace each call is
//! a span: the pack, the operation and the statement's verb, never its text or values.

use std::sync::Arc;
use std::time::Instant;

use opentelemetry::KeyValue;
use opentelemetry::trace::SpanKind;
use wasmtime::component::{HasData, Linker};

use crate::runtime::CallContext;
use crate::runtime::bindings::CapabilityError;
use crate::runtime::bindings::valhalla::pack::store::{self, Host, Rows, Statement, Value};
use crate::storage::table_access::{AccessError, StatementInfo, TableAccess};
use crate::storage::{self, Access, Caller, Db, PackTables, SqlValue, StorageError};
use crate::telemetry::{self, Span};

/// One pack's `store`: the tables its migrations created (checked by the parser, then
/// enforced by the database through its sandbox) and the database.
pub struct Store {
    /// the parser's check: a friendly first error, not the boundary
    tables: TableAccess,
    /// the database's side of the sandbox (the boundary)
    sandbox: Arc<PackTables>,
    db: Db,
}

impl Store {
    pub fn new(sandbox: Arc<PackTables>, db: Db) -> Self {
        Self {
            tables: TableAccess::new(sandbox.tables().map(String::from)),
            sandbox,
            db,
        }
    }

    /// The database's side of this pack's sandbox.
    pub fn sandbox(&self) -> &Arc<PackTables> {
        &self.sandbox
    }
}

/// What one call's `store` imports see: the pack's store, who the call is for, and when its
/// deadline passes (its statements stop then too).
pub struct StoreView<'a> {
    pub store: &'a Store,
    pub call: &'a CallContext,
    pub deadline: Instant,
}

struct StoreData;

impl HasData for StoreData {
    type Data<'a> = StoreView<'a>;
}

/// Link `store` for stores whose data `get` views.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> StoreView<'_>,
) -> wasmtime::Result<()> {
    store::add_to_linker::<T, StoreData>(linker, get)
}

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

impl StoreView<'_> {
    fn pack(&self) -> &str {
        &self.store.sandbox.pack
    }

    fn check_sql(&self, sql: &str, params: usize) -> Result<StatementInfo, CapabilityError> {
        self.store.tables.check(sql, params).map_err(|e| {
            tracing::warn!(pack = %self.pack(), request_id = %self.call.request_id, error = %e, "statement refused");
            match e {
                AccessError::ForeignTable(_) | AccessError::Function(_) | AccessError::NotDml => {
                    CapabilityError::AccessDenied(e.to_string())
                }
                _ => CapabilityError::Invalid(e.to_string()),
            }
        })
    }

    /// Who the statements are for: this pack, until this call's deadline.
    fn caller(&self) -> Caller {
        Caller::pack(Arc::clone(&self.store.sandbox), self.deadline)
    }

    fn storage_error(&self, e: StorageError) -> CapabilityError {
        match e {
            StorageError::Denied(m) => {
                tracing::warn!(pack = %self.pack(), request_id = %self.call.request_id, error = %m, "the database refused a statement");
                CapabilityError::AccessDenied(format!("refused by the table sandbox: {m}"))
            }
            StorageError::Deadline => CapabilityError::Unavailable(
                "the statement ran past the call's deadline and was stopped".into(),
            ),
            StorageError::Conflict(m) => CapabilityError::Conflict(m),
            StorageError::Invalid(m) => CapabilityError::Invalid(m),
            StorageError::Unavailable(m) => {
                tracing::warn!(pack = %self.pack(), request_id = %self.call.request_id, error = %m, "database unavailable");
                CapabilityError::Unavailable("the database is unavailable".into())
            }
            StorageError::Internal(m) => {
                tracing::error!(pack = %self.pack(), request_id = %self.call.request_id, error = %m, "database error");
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

/// The statement's first keyword (`SELECT`, `INSERT` …): what a span may say of it.
fn verb(sql: &str) -> String {
    sql.trim_start()
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or_default()
        .chars()
        .take(16)
        .collect::<String>()
        .to_ascii_uppercase()
}

impl StoreView<'_> {
    /// This call's span, when the request is recorded.
    fn span(&self, op: &'static str, verb: impl FnOnce() -> String) -> Option<Span> {
        Span::child(
            || format!("store {op}").into(),
            SpanKind::Client,
            || {
                vec![
                    KeyValue::new("valhalla.pack", self.pack().to_string()),
                    KeyValue::new("valhalla.store.op", op),
                    KeyValue::new("db.operation.name", verb()),
                ]
            },
        )
    }
}

/// End `span` with `result`'s kind of failure, if it failed.
fn finish<T>(span: Option<Span>, result: &Result<T, CapabilityError>) {
    if let (Some(mut span), Err(e)) = (span, result) {
        span.fail(|| telemetry::error_kind(e).to_string());
    }
}

impl Host for StoreView<'_> {
    async fn query(&mut self, sql: String, params: Vec<Value>) -> Result<Rows, CapabilityError> {
        let mut span = self.span("query", || verb(&sql));
        let rows = self.run_query(sql, params).await;
        if let (Some(span), Ok(rows)) = (&mut span, &rows) {
            span.set(|| KeyValue::new("db.response.returned_rows", rows.rows.len() as i64));
        }
        finish(span, &rows);
        rows
    }

    async fn execute(&mut self, sql: String, params: Vec<Value>) -> Result<u64, CapabilityError> {
        let span = self.span("execute", || verb(&sql));
        let done = self.run_execute(sql, params).await;
        finish(span, &done);
        done
    }

    async fn batch(&mut self, statements: Vec<Statement>) -> Result<Vec<u64>, CapabilityError> {
        let mut span = self.span("batch", || {
            let verbs: Vec<String> = statements.iter().map(|s| verb(&s.sql)).collect();
            verbs.join(",")
        });
        if let Some(span) = &mut span {
            span.set(|| KeyValue::new("valhalla.store.statements", statements.len() as i64));
        }
        let done = self.run_batch(statements).await;
        finish(span, &done);
        done
    }
}

impl StoreView<'_> {
    async fn run_query(
        &mut self,
        sql: String,
        params: Vec<Value>,
    ) -> Result<Rows, CapabilityError> {
        let info = self.check_sql(&sql, params.len())?;
        let access = if info.read_only {
            Access::Read
        } else {
            Access::Write
        };
        let params: Vec<SqlValue> = params.into_iter().map(to_sql).collect();
        let (caller, db) = (self.caller(), &self.store.db);
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

    async fn run_execute(
        &mut self,
        sql: String,
        params: Vec<Value>,
    ) -> Result<u64, CapabilityError> {
        self.check_sql(&sql, params.len())?;
        let params: Vec<SqlValue> = params.into_iter().map(to_sql).collect();
        let (caller, db) = (self.caller(), &self.store.db);
        within(self.deadline, db.execute(&caller, &sql, &params))
            .await
            .map_err(|e| self.storage_error(e))
    }

    async fn run_batch(&mut self, statements: Vec<Statement>) -> Result<Vec<u64>, CapabilityError> {
        let mut checked = Vec::with_capacity(statements.len());
        for s in statements {
            self.check_sql(&s.sql, s.params.len())?;
            checked.push(storage::Statement {
                sql: s.sql,
                params: s.params.into_iter().map(to_sql).collect(),
            });
        }
        let (caller, db) = (self.caller(), &self.store.db);
        within(self.deadline, db.batch(&caller, &checked))
            .await
            .map_err(|e| self.storage_error(e))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A pack `notes` owning `notes`, on a fresh SQLite file that also holds `secrets`.
    async fn notes() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("s.db").display());
        let db = Db::connect(&url, 2).await.unwrap();
        for sql in [
            "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)",
            "CREATE TABLE secrets (v TEXT)",
        ] {
            db.execute(&Caller::host(), sql, &[]).await.unwrap();
        }
        let sandbox = Arc::new(PackTables::new("notes", ["notes".to_string()]));
        (dir, Store::new(sandbox, db))
    }

    fn view<'a>(store: &'a Store, call: &'a CallContext) -> StoreView<'a> {
        let deadline = Instant::now() + Duration::from_secs(5);
        StoreView {
            store,
            call,
            deadline,
        }
    }

    fn text(t: &str) -> Value {
        Value::Text(Some(t.into()))
    }

    #[tokio::test]
    async fn a_pack_reads_and_writes_its_own_tables() {
        let (_dir, store) = notes().await;
        let call = CallContext::default();
        let mut v = view(&store, &call);
        let n = v
            .execute(
                "INSERT INTO notes (body) VALUES ($1)".into(),
                vec![text("hi")],
            )
            .await
            .unwrap();
        assert_eq!(n, 1);
        let rows = v
            .query("SELECT body FROM notes".into(), vec![])
            .await
            .unwrap();
        assert_eq!(rows.columns, ["body"]);
        assert!(matches!(&rows.rows[0][0], Value::Text(Some(b)) if b == "hi"));
    }

    #[tokio::test]
    async fn another_packs_table_is_access_denied() {
        let (_dir, store) = notes().await;
        let call = CallContext::default();
        let mut v = view(&store, &call);
        for sql in [
            "SELECT v FROM secrets",
            "INSERT INTO secrets (v) VALUES ('x')",
            "DROP TABLE notes",
        ] {
            let r = v.query(sql.into(), vec![]).await;
            assert!(
                matches!(r, Err(CapabilityError::AccessDenied(_))),
                "{sql}: {r:?}"
            );
        }
        let batch = vec![
            Statement {
                sql: "INSERT INTO notes (body) VALUES ('a')".into(),
                params: vec![],
            },
            Statement {
                sql: "DELETE FROM secrets".into(),
                params: vec![],
            },
        ];
        assert!(matches!(
            v.batch(batch).await,
            Err(CapabilityError::AccessDenied(_))
        ));
        let rows = v
            .query("SELECT id FROM notes".into(), vec![])
            .await
            .unwrap();
        assert!(rows.rows.is_empty(), "a refused batch runs nothing");
    }

    #[test]
    fn spans_name_the_verb_only() {
        assert_eq!(verb("  select body FROM notes WHERE id = $1"), "SELECT");
        assert_eq!(verb("WITH x AS (SELECT 1) SELECT * FROM x"), "WITH");
        assert_eq!(verb(""), "");
    }

    #[tokio::test]
    async fn mistakes_are_invalid_and_conflicts_are_conflicts() {
        let (_dir, store) = notes().await;
        let call = CallContext::default();
        let mut v = view(&store, &call);
        let r = v
            .execute("INSERT INTO notes (body) VALUES ($1)".into(), vec![])
            .await;
        assert!(matches!(r, Err(CapabilityError::Invalid(_))), "{r:?}");
        let insert = "INSERT INTO notes (id, body) VALUES (1, 'a')";
        v.execute(insert.into(), vec![]).await.unwrap();
        let r = v.execute(insert.into(), vec![]).await;
        assert!(matches!(r, Err(CapabilityError::Conflict(_))), "{r:?}");
    }
}
