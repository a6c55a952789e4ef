//! The database: SQLite (file created if missing, WAL, host-owned connection lanes) or a
//! PostgreSQL pool, chosen by URL.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteSynchronous};
use sqlx::{Executor, PgPool};

use super::sqlite_lanes::{JobError, Lanes};

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

const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

fn sqlite_options(url: &str) -> Result<SqliteConnectOptions, StorageError> {
    Ok(SqliteConnectOptions::from_str(url)
        .map_err(|e| StorageError::Invalid(format!("bad SQLite URL: {e}")))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(5))
        .foreign_keys(true))
}

/// SQLite: one writer, and the rest of `max_connections` (at least one) read.
fn sqlite_readers(max_connections: u32) -> usize {
    (max_connections.saturating_sub(1) as usize).max(1)
}

impl Db {
    /// Connect to `url`; a SQLite file is created if missing and put in WAL mode.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StorageError> {
        if url.starts_with("sqlite:") {
            let lanes = Lanes::new(sqlite_options(url)?, sqlite_readers(max_connections))?;
            // Open the writer now: it creates the file and switches it to WAL before any
            // reader opens it, and a bad path fails at start rather than on first use.
            lanes.write(|_| Box::pin(async { Ok(()) })).await?;
            Ok(Self::Sqlite(Arc::new(lanes)))
        } else {
            let options = PgConnectOptions::from_str(url)
                .map_err(|e| StorageError::Invalid(format!("bad PostgreSQL URL: {e}")))?;
            let pool = PgPoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect_with(options)
                .await?;
            Ok(Self::Postgres(pool))
        }
    }

    /// A database that connects on first use (for commands that may not need it).
    pub fn connect_lazy(url: &str, max_connections: u32) -> Result<Self, StorageError> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite(Arc::new(Lanes::new(
                sqlite_options(url)?,
                sqlite_readers(max_connections),
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

    /// A trivial round trip, for readiness.
    pub async fn ping(&self) -> Result<(), StorageError> {
        match self {
            Self::Sqlite(lanes) => {
                let mut lane = lanes.reader().await?;
                let result = lane.conn()?.execute("SELECT 1").await;
                lane.outcome(result).map(drop)
            }
            Self::Postgres(pool) => pool.execute("SELECT 1").await.map(drop).map_err(Into::into),
        }
    }

    /// Run a statement that returns rows; `access` picks a SQLite reader or the writer.
    pub async fn query(
        &self,
        sql: &str,
        params: &[SqlValue],
        access: Access,
    ) -> Result<Rows, StorageError> {
        match (self, access) {
            (Self::Sqlite(lanes), Access::Read) => {
                let mut lane = lanes.reader().await?;
                let result = sqlite_query(sql, params).fetch_all(lane.conn()?).await;
                decode_sqlite(lane.outcome(result)?)
            }
            (Self::Sqlite(lanes), Access::Write) => {
                let (sql, params) = (sql.to_string(), params.to_vec());
                let rows = lanes
                    .write(move |conn| {
                        Box::pin(
                            async move { Ok(sqlite_query(&sql, &params).fetch_all(conn).await?) },
                        )
                    })
                    .await?;
                decode_sqlite(rows)
            }
            (Self::Postgres(pool), _) => decode_pg(pg_query(sql, params).fetch_all(pool).await?),
        }
    }

    pub async fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<u64, StorageError> {
        match self {
            Self::Sqlite(lanes) => {
                let (sql, params) = (sql.to_string(), params.to_vec());
                lanes
                    .write(move |conn| {
                        Box::pin(async move {
                            let done = sqlite_query(&sql, &params).execute(conn).await?;
                            Ok(done.rows_affected())
                        })
                    })
                    .await
            }
            Self::Postgres(pool) => Ok(pg_query(sql, params).execute(pool).await?.rows_affected()),
        }
    }

    /// Run `statements` in one transaction: all or nothing.
    pub async fn batch(&self, statements: &[Statement]) -> Result<Vec<u64>, StorageError> {
        match self {
            Self::Sqlite(lanes) => {
                let statements = statements.to_vec();
                lanes
                    .write(move |conn| Box::pin(sqlite_transaction(conn, statements)))
                    .await
            }
            Self::Postgres(pool) => {
                let mut affected = Vec::with_capacity(statements.len());
                let mut tx = pool.begin().await?;
                for s in statements {
                    affected.push(
                        pg_query(&s.sql, &s.params)
                            .execute(&mut *tx)
                            .await?
                            .rows_affected(),
                    );
                }
                tx.commit().await?;
                Ok(affected)
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

/// BEGIN IMMEDIATE, the statements, COMMIT; on a failure, ROLLBACK and the failure. A
/// connection whose transaction cannot be ended is poisoned.
async fn sqlite_transaction(
    conn: &mut SqliteConnection,
    statements: Vec<Statement>,
) -> Result<Vec<u64>, JobError> {
    // IMMEDIATE takes the file's write lock up front (another process may hold it: then this
    // waits up to busy_timeout).
    conn.execute("BEGIN IMMEDIATE").await?;
    let mut affected = Vec::with_capacity(statements.len());
    let run = async {
        for s in &statements {
            let done = sqlite_query(&s.sql, &s.params).execute(&mut *conn).await?;
            affected.push(done.rows_affected());
        }
        conn.execute("COMMIT").await.map(drop)
    }
    .await;
    match run {
        Ok(()) => Ok(affected),
        Err(error) => {
            let poisoned = conn.execute("ROLLBACK").await.is_err();
            Err(JobError { error, poisoned })
        }
    }
}
