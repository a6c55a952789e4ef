//! The database: SQLite (file created if missing, WAL, host-owned connection lanes) or a
//! PostgreSQL pool, chosen by URL.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteSynchronous};
use sqlx::{Executor, PgPool};

use super::sqlite_lanes::Lanes;

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
            let lanes = Lanes::new(sqlite_options(url)?, sqlite_readers(max_connections));
            // Open the writer now: it creates the file and switches it to WAL before any
            // reader opens it, and a bad path fails at start rather than on first use.
            lanes.writer().await?;
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
            ))))
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
        match self {
            Self::Sqlite(lanes) => {
                let mut lane = match access {
                    Access::Read => lanes.reader().await?,
                    Access::Write => lanes.writer().await?,
                };
                let result = sqlite_query(sql, params).fetch_all(lane.conn()?).await;
                decode_sqlite(lane.outcome(result)?)
            }
            Self::Postgres(pool) => decode_pg(pg_query(sql, params).fetch_all(pool).await?),
        }
    }

    pub async fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<u64, StorageError> {
        Ok(match self {
            Self::Sqlite(lanes) => {
                let mut lane = lanes.writer().await?;
                let result = sqlite_query(sql, params).execute(lane.conn()?).await;
                lane.outcome(result)?.rows_affected()
            }
            Self::Postgres(pool) => pg_query(sql, params).execute(pool).await?.rows_affected(),
        })
    }

    /// Run `statements` in one transaction: all or nothing.
    pub async fn batch(&self, statements: &[Statement]) -> Result<Vec<u64>, StorageError> {
        let mut affected = Vec::with_capacity(statements.len());
        match self {
            Self::Sqlite(lanes) => {
                let mut lane = lanes.writer().await?;
                // BEGIN IMMEDIATE takes the file's write lock up front (another process may
                // hold it: then it waits up to busy_timeout).
                lane.set_in_transaction(true);
                match sqlite_transaction(lane.conn()?, statements, &mut affected).await {
                    Ok(()) => lane.set_in_transaction(false),
                    Err((e, still_open)) => {
                        lane.set_in_transaction(still_open);
                        lane.outcome(Err::<(), _>(e))?;
                    }
                }
            }
            Self::Postgres(pool) => {
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
            }
        }
        Ok(affected)
    }

    pub async fn close(&self) {
        match self {
            Self::Sqlite(lanes) => lanes.close().await,
            Self::Postgres(pool) => pool.close().await,
        }
    }
}

/// BEGIN IMMEDIATE, the statements, COMMIT; on a failure, ROLLBACK and the failure, with
/// whether the transaction may still be open (the ROLLBACK failed too).
async fn sqlite_transaction(
    conn: &mut SqliteConnection,
    statements: &[Statement],
    affected: &mut Vec<u64>,
) -> Result<(), (sqlx::Error, bool)> {
    conn.execute("BEGIN IMMEDIATE")
        .await
        .map_err(|e| (e, false))?;
    let run = async {
        for s in statements {
            let done = sqlite_query(&s.sql, &s.params).execute(&mut *conn).await?;
            affected.push(done.rows_affected());
        }
        conn.execute("COMMIT").await.map(drop)
    }
    .await;
    match run {
        Ok(()) => Ok(()),
        Err(e) => {
            let still_open = conn.execute("ROLLBACK").await.is_err();
            Err((e, still_open))
        }
    }
}
