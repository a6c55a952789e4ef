//! The database: SQLite (file created if missing, WAL, host-owned connection lanes) or a
//! PostgreSQL pool, chosen by URL.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{Executor, PgPool};

use super::caller::Caller;
use super::pg_sandbox;
use super::sqlite_lanes::{Guarded, JobError, Lanes};

use super::values::{decode_pg, decode_sqlite, pg_query, sqlite_query};
use super::{Rows, SqlValue, Statement, StorageError};
use crate::config::Engine;

/// One database: SQLite through the host's own connection lanes, or a PostgreSQL pool.
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(Arc<Lanes>),
    Postgres(PgPool),
}

/// Whether a statement only reads (and may run on a read-only connection) or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// How long a statement waits: for a connection (`acquire`: the pools, SQLite's readers and
/// its writer's queue), and on SQLite for another process's write lock (`busy`). Past
/// either, the database is unavailable (503) rather than waited on without bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DbLimits {
    pub acquire: Duration,
    pub busy: Duration,
}

impl Default for DbLimits {
    fn default() -> Self {
        Self {
            acquire: Duration::from_secs(1),
            busy: Duration::from_secs(5),
        }
    }
}

impl DbLimits {
    pub fn of(config: &crate::config::DatabaseConfig) -> Self {
        Self {
            acquire: Duration::from_millis(config.acquire_timeout_ms),
            busy: Duration::from_millis(config.busy_timeout_ms),
        }
    }
}

fn sqlite_options(url: &str, limits: DbLimits) -> Result<SqliteConnectOptions, StorageError> {
    Ok(SqliteConnectOptions::from_str(url)
        .map_err(|e| StorageError::Invalid(format!("bad SQLite URL: {e}")))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        // the host's connections replace this with a handler that also minds the caller's
        // deadline (`sqlite_busy`); the checkpointer's keeps it
        .busy_timeout(limits.busy)
        .foreign_keys(true))
}

/// SQLite: one writer, and the rest of `max_connections` (at least one) read.
fn sqlite_readers(max_connections: u32) -> usize {
    (max_connections.saturating_sub(1) as usize).max(1)
}

/// SQLite lanes for `url`, with one inline reader per core (a tokio worker each).
fn sqlite_lanes(url: &str, max_connections: u32, limits: DbLimits) -> Result<Lanes, StorageError> {
    let options = sqlite_options(url, limits)?;
    let in_memory = url.contains(":memory:") || url.contains("mode=memory");
    let path = (!in_memory).then(|| options.get_filename().to_path_buf());
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    Lanes::new(
        options,
        sqlite_readers(max_connections),
        path,
        cores,
        limits,
    )
}

impl Db {
    /// Connect to `url` with the default [`DbLimits`].
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StorageError> {
        Self::connect_with(url, max_connections, DbLimits::default()).await
    }

    /// Connect to `url`; a SQLite file is created if missing and put in WAL mode.
    pub async fn connect_with(
        url: &str,
        max_connections: u32,
        limits: DbLimits,
    ) -> Result<Self, StorageError> {
        if url.starts_with("sqlite:") {
            let lanes = sqlite_lanes(url, max_connections, limits)?;
            // Open the writer now: it creates the file and switches it to WAL before any
            // reader opens it, and a bad path fails at start rather than on first use.
            lanes
                .write(&Caller::host(), |_| Box::pin(async { Ok(()) }))
                .await?;
            Ok(Self::Sqlite(Arc::new(lanes)))
        } else {
            let options = PgConnectOptions::from_str(url)
                .map_err(|e| StorageError::Invalid(format!("bad PostgreSQL URL: {e}")))?;
            let pool = PgPoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(limits.acquire)
                .connect_with(options)
                .await?;
            Ok(Self::Postgres(pool))
        }
    }

    /// A database that connects on first use (for commands that may not need it).
    pub fn connect_lazy(url: &str, max_connections: u32) -> Result<Self, StorageError> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite(Arc::new(sqlite_lanes(
                url,
                max_connections,
                DbLimits::default(),
            )?)))
        } else {
            let options = PgConnectOptions::from_str(url)
                .map_err(|e| StorageError::Invalid(format!("bad PostgreSQL URL: {e}")))?;
            Ok(Self::Postgres(
                PgPoolOptions::new()
                    .max_connections(max_connections)
                    .connect_lazy_with(options),
            ))
        }
    }

    pub fn engine(&self) -> Engine {
        match self {
            Self::Sqlite(_) => Engine::Sqlite,
            Self::Postgres(_) => Engine::Postgres,
        }
    }

    /// Connections in use and idle right now: the PostgreSQL pool's, or SQLite's reader lanes.
    pub fn connections(&self) -> (usize, usize) {
        match self {
            Self::Sqlite(lanes) => lanes.reader_use(),
            Self::Postgres(pool) => {
                let idle = pool.num_idle();
                ((pool.size() as usize).saturating_sub(idle), idle)
            }
        }
    }

    /// A trivial round trip, for readiness.
    pub async fn ping(&self) -> Result<(), StorageError> {
        match self {
            Self::Sqlite(lanes) => {
                let mut lane = lanes.reader().await?;
                let guarded = lane.conn()?;
                let _entered = guarded.sandbox.enter(&Caller::host());
                let result = guarded.conn.execute("SELECT 1").await;
                lane.outcome(result).map(drop)
            }
            Self::Postgres(pool) => pool.execute("SELECT 1").await.map(drop).map_err(Into::into),
        }
    }

    /// Run a statement for `caller` that returns rows; `access` picks a SQLite reader or the
    /// writer.
    pub async fn query(
        &self,
        caller: &Caller,
        sql: &str,
        params: &[SqlValue],
        access: Access,
    ) -> Result<Rows, StorageError> {
        match (self, access) {
            (Self::Sqlite(lanes), Access::Read) => {
                let sql = caller.tag(sql);
                match lanes.read_inline(caller, &sql, params) {
                    Some(rows) => Ok(rows),
                    None => read_on_lane(lanes, caller, &sql, params).await,
                }
            }
            (Self::Sqlite(lanes), Access::Write) => {
                let (sql, params, who) = (caller.tag(sql), params.to_vec(), caller.clone());
                let rows = lanes
                    .write(caller, move |g| {
                        Box::pin(async move {
                            g.check(&who, &sql).await?;
                            Ok(sqlite_query(&sql, &params).fetch_all(&mut g.conn).await?)
                        })
                    })
                    .await?;
                decode_sqlite(rows)
            }
            (Self::Postgres(host), _) => {
                let pool = pg_sandbox::pool_for(host, caller);
                let rows = pg_sandbox::watched(host, caller, pg_query(sql, params).fetch_all(pool));
                decode_pg(rows.await?)
            }
        }
    }

    pub async fn execute(
        &self,
        caller: &Caller,
        sql: &str,
        params: &[SqlValue],
    ) -> Result<u64, StorageError> {
        match self {
            Self::Sqlite(lanes) => {
                let (sql, params, who) = (caller.tag(sql), params.to_vec(), caller.clone());
                lanes
                    .write(caller, move |g| {
                        Box::pin(async move {
                            g.check(&who, &sql).await?;
                            let done = sqlite_query(&sql, &params).execute(&mut g.conn).await?;
                            Ok(done.rows_affected())
                        })
                    })
                    .await
            }
            Self::Postgres(host) => {
                let pool = pg_sandbox::pool_for(host, caller);
                let done = pg_sandbox::watched(host, caller, pg_query(sql, params).execute(pool));
                Ok(done.await?.rows_affected())
            }
        }
    }

    /// Run `statements` for `caller` in one transaction: all or nothing.
    pub async fn batch(
        &self,
        caller: &Caller,
        statements: &[Statement],
    ) -> Result<Vec<u64>, StorageError> {
        match self {
            Self::Sqlite(lanes) => {
                let statements: Vec<Statement> = statements
                    .iter()
                    .map(|s| Statement {
                        sql: caller.tag(&s.sql),
                        params: s.params.clone(),
                    })
                    .collect();
                let who = caller.clone();
                lanes
                    .write(caller, move |g| {
                        Box::pin(sqlite_transaction(g, who, statements))
                    })
                    .await
            }
            Self::Postgres(host) => {
                let pool = pg_sandbox::pool_for(host, caller);
                let run = async {
                    let mut affected = Vec::with_capacity(statements.len());
                    let mut tx = pool.begin().await?;
                    for s in statements {
                        let done = pg_query(&s.sql, &s.params).execute(&mut *tx).await?;
                        affected.push(done.rows_affected());
                    }
                    tx.commit().await?;
                    Ok(affected)
                };
                Ok(pg_sandbox::watched(host, caller, run).await?)
            }
        }
    }

    pub async fn close(&self) {
        match self {
            Self::Sqlite(lanes) => lanes.close().await,
            Self::Postgres(pool) => pool.close().await,
        }
    }
}

/// A read on a reader lane (off-thread, waiting for locks up to the busy timeout).
async fn read_on_lane(
    lanes: &Lanes,
    caller: &Caller,
    sql: &str,
    params: &[SqlValue],
) -> Result<Rows, StorageError> {
    let mut lane = lanes.reader().await?;
    let guarded = lane.conn()?;
    let _entered = guarded.sandbox.enter(caller);
    let result = async {
        guarded.check(caller, sql).await?;
        sqlite_query(sql, params).fetch_all(&mut guarded.conn).await
    }
    .await;
    decode_sqlite(lane.outcome(result)?)
}

/// BEGIN IMMEDIATE, the statements, COMMIT; on a failure, ROLLBACK and the failure. A
/// connection whose transaction cannot be ended is poisoned.
async fn sqlite_transaction(
    guarded: &mut Guarded,
    caller: Caller,
    statements: Vec<Statement>,
) -> Result<Vec<u64>, JobError> {
    for s in &statements {
        guarded.check(&caller, &s.sql).await?;
    }
    // BEGIN, COMMIT and ROLLBACK are the host's; the statements between them the caller's.
    let (sandbox, host) = (Arc::clone(&guarded.sandbox), Caller::host());
    let conn = &mut guarded.conn;
    // IMMEDIATE takes the file's write lock up front (another process may hold it: then this
    // retries with backoff up to the busy bound or the caller's deadline, `sqlite_busy`).
    {
        let _host = sandbox.enter(&host);
        conn.execute("BEGIN IMMEDIATE").await?;
    }
    let mut affected = Vec::with_capacity(statements.len());
    let run = async {
        let _caller = sandbox.enter(&caller);
        for s in &statements {
            let done = sqlite_query(&s.sql, &s.params).execute(&mut *conn).await?;
            affected.push(done.rows_affected());
        }
        Ok::<(), sqlx::Error>(())
    }
    .await;
    let _host = sandbox.enter(&host);
    let run = match run {
        Ok(()) => conn.execute("COMMIT").await.map(drop),
        Err(e) => Err(e),
    };
    match run {
        Ok(()) => Ok(affected),
        Err(error) => {
            let poisoned = conn.execute("ROLLBACK").await.is_err();
            Err(JobError { error, poisoned })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h() -> Caller {
        Caller::host()
    }

    async fn sqlite() -> (tempfile::TempDir, String, Db) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let db = Db::connect(&url, 4).await.unwrap();
        db.execute(
            &h(),
            "CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL)",
            &[],
        )
        .await
        .unwrap();
        (dir, url, db)
    }

    fn text(s: &str) -> SqlValue {
        SqlValue::Text(Some(s.to_string()))
    }

    fn insert(k: &str) -> Statement {
        Statement {
            sql: "INSERT INTO t (k, v) VALUES ($1, 1)".into(),
            params: vec![text(k)],
        }
    }

    /// `n` single-row inserts (keys `{prefix}0`…), each its own task, all at once.
    fn spawn_inserts(
        db: &Db,
        prefix: &str,
        n: usize,
    ) -> Vec<tokio::task::JoinHandle<Result<Vec<u64>, StorageError>>> {
        (0..n)
            .map(|i| {
                let (db, key) = (db.clone(), format!("{prefix}{i}"));
                tokio::spawn(async move { db.batch(&h(), &[insert(&key)]).await })
            })
            .collect()
    }

    async fn count(db: &Db) -> i64 {
        let rows = db
            .query(&h(), "SELECT COUNT(*) AS n FROM t", &[], Access::Read)
            .await
            .unwrap();
        match rows.rows[0][0] {
            SqlValue::Int(Some(n)) => n,
            ref other => panic!("not a count: {other:?}"),
        }
    }

    fn lanes(db: &Db) -> &Arc<Lanes> {
        match db {
            Db::Sqlite(lanes) => lanes,
            Db::Postgres(_) => unreachable!("a SQLite database"),
        }
    }

    #[tokio::test]
    async fn inline_and_lane_reads_decode_alike() {
        let (_dir, _, db) = sqlite().await;
        db.execute(
            &h(),
            "CREATE TABLE typed (b BOOLEAN, i BIGINT, n INTEGER, t TEXT, r REAL, x BLOB, \
             d DATETIME, v VARCHAR(20))",
            &[],
        )
        .await
        .unwrap();
        db.execute(
            &h(),
            "INSERT INTO typed VALUES (TRUE, 7, -3, 'seven', 0.5, x'00ff', '2026-11-23', 'v'), \
             (FALSE, 8, NULL, NULL, NULL, NULL, NULL, NULL), (NULL, NULL, 1, '', 2.0, x'', 5, 6)",
            &[],
        )
        .await
        .unwrap();
        let queries: &[(&str, Vec<SqlValue>)] = &[
            ("SELECT * FROM typed ORDER BY i", vec![]),
            (
                "SELECT COUNT(*) AS c, MAX(i) + 1 AS m, NULL AS z, 1.5 AS f, 'a' || t AS s \
                 FROM typed WHERE t IS NOT NULL GROUP BY t ORDER BY t",
                vec![],
            ),
            (
                "SELECT t, i FROM typed WHERE i = $2 OR t = $1 OR (b = $3 AND $2 > 0)",
                vec![
                    text("seven"),
                    SqlValue::Int(Some(8)),
                    SqlValue::Boolean(Some(false)),
                ],
            ),
            (
                "SELECT i FROM typed WHERE n = ? OR r = ?",
                vec![SqlValue::Int(Some(1)), SqlValue::Float(Some(0.5))],
            ),
            (
                "SELECT i FROM typed WHERE x = $1",
                vec![SqlValue::Blob(Some(vec![0, 255]))],
            ),
            (
                "SELECT i FROM typed WHERE t = $1",
                vec![SqlValue::Text(None)],
            ),
            ("SELECT * FROM typed WHERE i = 99", vec![]),
        ];
        for (sql, params) in queries {
            let inline = lanes(&db)
                .read_inline(&h(), sql, params)
                .unwrap_or_else(|| panic!("read inline: {sql}"));
            let lane = read_on_lane(lanes(&db), &h(), sql, params).await.unwrap();
            assert_eq!(inline, lane, "{sql}");
        }
        let all = lanes(&db)
            .read_inline(&h(), "SELECT b, i, x FROM typed ORDER BY i", &[])
            .unwrap();
        assert_eq!(
            all.rows[2],
            vec![
                SqlValue::Boolean(Some(false)),
                SqlValue::Int(Some(8)),
                SqlValue::Blob(None)
            ]
        );
    }

    #[tokio::test]
    async fn inline_reads_decline_what_they_cannot_answer_and_the_lanes_do() {
        let (_dir, _, db) = sqlite().await;
        let slow = super::super::sqlite_inline::SLOW_READ;
        assert_eq!(
            lanes(&db).read_inline(&h(), slow, &[]),
            None,
            "over the budget"
        );
        assert_eq!(
            lanes(&db).read_inline(&h(), slow, &[]),
            None,
            "remembered as slow"
        );
        let rows = db.query(&h(), slow, &[], Access::Read).await.unwrap();
        assert_eq!(rows.rows, vec![vec![SqlValue::Int(Some(2_000_000))]]);
        // errors are reported by the lanes, with their mapping
        let missing = "SELECT nope FROM t";
        assert_eq!(lanes(&db).read_inline(&h(), missing, &[]), None);
        let error = db.query(&h(), missing, &[], Access::Read).await;
        assert!(matches!(error, Err(StorageError::Invalid(_))), "{error:?}");
        let unbound = "SELECT k FROM t WHERE k = $2";
        assert_eq!(lanes(&db).read_inline(&h(), unbound, &[text("a")]), None);
        // quick reads still run inline
        assert!(
            lanes(&db)
                .read_inline(&h(), "SELECT k FROM t", &[])
                .is_some()
        );
    }

    #[tokio::test]
    async fn a_panicking_write_job_does_not_stop_the_writer() {
        let (_dir, _, db) = sqlite().await;
        let lanes = lanes(&db);
        let lost = lanes
            .write(&h(), |_| {
                Box::pin(async {
                    if std::hint::black_box(true) {
                        panic!("a job that panics");
                    }
                    Ok(())
                })
            })
            .await;
        assert!(
            matches!(lost, Err(StorageError::Unavailable(_))),
            "{lost:?}"
        );
        db.batch(&h(), &[insert("after")]).await.unwrap();
        assert_eq!(count(&db).await, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_past_the_queue_or_the_wait_are_refused_not_queued_without_bound() {
        let (dir, _, db) = sqlite().await;
        db.close().await;
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let limits = DbLimits {
            acquire: Duration::from_millis(500),
            ..DbLimits::default()
        };
        let db = Db::connect_with(&url, 4, limits).await.unwrap();
        let lanes = lanes(&db);
        // hold the writer until released
        let (release, held) = tokio::sync::oneshot::channel::<()>();
        let blocker = {
            let lanes = Arc::clone(lanes);
            tokio::spawn(async move {
                lanes
                    .write(&h(), |_| {
                        Box::pin(async move {
                            let _ = held.await;
                            Ok(())
                        })
                    })
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let queued = spawn_inserts(&db, "q", 1024);
        let full = tokio::time::timeout(Duration::from_secs(20), async {
            while lanes.write_room() > 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        full.await.expect("the queue fills");
        let started = std::time::Instant::now();
        let refused = db.batch(&h(), &[insert("one too many")]).await;
        assert!(
            matches!(refused, Err(StorageError::Unavailable(_))),
            "{refused:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(2), "bounded wait");
        // the queued writes were not started within the bound: refused too, and skipped
        for q in queued {
            let r = q.await.unwrap();
            assert!(matches!(r, Err(StorageError::Unavailable(_))), "{r:?}");
        }
        let _ = release.send(());
        blocker.await.unwrap().unwrap();
        db.batch(&h(), &[insert("after")]).await.unwrap();
        assert_eq!(count(&db).await, 1, "no refused write ran late");
    }

    #[tokio::test]
    async fn reading_connections_refuse_writes() {
        let (_dir, _, db) = sqlite().await;
        let write = db
            .query(
                &h(),
                "INSERT INTO t (k, v) VALUES ('a', 1) RETURNING k",
                &[],
                Access::Read,
            )
            .await;
        assert!(write.is_err(), "{write:?}");
        assert_eq!(count(&db).await, 0);
        let written = db
            .query(
                &h(),
                "INSERT INTO t (k, v) VALUES ('a', 1) RETURNING k",
                &[],
                Access::Write,
            )
            .await
            .unwrap();
        assert_eq!(written.rows, vec![vec![text("a")]]);
        assert_eq!(count(&db).await, 1, "a committed write is seen by readers");
    }

    #[tokio::test]
    async fn a_failed_batch_leaves_nothing_and_the_writer_goes_on() {
        let (_dir, _, db) = sqlite().await;
        let failed = db
            .batch(&h(), &[insert("a"), insert("b"), insert("a")])
            .await;
        assert!(
            matches!(failed, Err(StorageError::Conflict(_))),
            "{failed:?}"
        );
        assert_eq!(count(&db).await, 0);
        assert_eq!(
            db.batch(&h(), &[insert("a"), insert("b")]).await.unwrap(),
            [1, 1]
        );
        assert_eq!(db.execute(&h(), "DELETE FROM t", &[]).await.unwrap(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_all_land() {
        let (_dir, _, db) = sqlite().await;
        for t in spawn_inserts(&db, "k", 200) {
            t.await.unwrap().unwrap();
        }
        assert_eq!(count(&db).await, 200);
    }

    #[tokio::test]
    async fn a_cancelled_batch_is_done_whole_and_later_writes_persist() {
        let (_dir, url, db) = sqlite().await;
        let batch: Vec<Statement> = (0..50).map(|i| insert(&format!("b{i}"))).collect();
        let host = h();
        tokio::select! {
            biased;
            _ = db.batch(&host, &batch) => {}
            _ = tokio::task::yield_now() => {}
        }
        db.execute(&h(), "INSERT INTO t (k, v) VALUES ('after', 2)", &[])
            .await
            .unwrap();
        db.close().await;
        let db = Db::connect(&url, 2).await.unwrap();
        let after = db
            .query(&h(), "SELECT v FROM t WHERE k = 'after'", &[], Access::Read)
            .await
            .unwrap();
        assert_eq!(after.rows.len(), 1, "the later write was committed");
        let n = count(&db).await;
        assert!(n == 1 || n == 51, "the batch is all or nothing: {n} rows");
    }
}
