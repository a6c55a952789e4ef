//! The database pool: SQLite (file created if missing, WAL) or PostgreSQL, chosen by URL.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Executor, PgPool, SqlitePool};

use super::values::{decode_pg, decode_sqlite, pg_query, sqlite_query};
use super::{Rows, SqlValue, Statement, StorageError};
use crate::config::Engine;

/// A connection pool to one database.
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

impl Db {
    /// Connect to `url`; a SQLite file is created if missing and put in WAL mode.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StorageError> {
        if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)
                .map_err(|e| StorageError::Invalid(format!("bad SQLite URL: {e}")))?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(5))
                .foreign_keys(true);
            let pool = SqlitePoolOptions::new()
                .max_connections(max_connections)
                .min_connections(1)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect_with(options)
                .await?;
            Ok(Self::Sqlite(pool))
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

    /// A pool that connects on first use (for commands that may not need the database).
    pub fn connect_lazy(url: &str, max_connections: u32) -> Result<Self, StorageError> {
        if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)
                .map_err(|e| StorageError::Invalid(format!("bad SQLite URL: {e}")))?;
            Ok(Self::Sqlite(
                SqlitePoolOptions::new()
                    .max_connections(max_connections)
                    .connect_lazy_with(options),
            ))
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
            Self::Sqlite(pool) => pool.execute("SELECT 1").await.map(drop)?,
            Self::Postgres(pool) => pool.execute("SELECT 1").await.map(drop)?,
        }
        Ok(())
    }

    pub async fn query(&self, sql: &str, params: &[SqlValue]) -> Result<Rows, StorageError> {
        match self {
            Self::Sqlite(pool) => decode_sqlite(sqlite_query(sql, params).fetch_all(pool).await?),
            Self::Postgres(pool) => decode_pg(pg_query(sql, params).fetch_all(pool).await?),
        }
    }

    pub async fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<u64, StorageError> {
        Ok(match self {
            Self::Sqlite(pool) => sqlite_query(sql, params)
                .execute(pool)
                .await?
                .rows_affected(),
            Self::Postgres(pool) => pg_query(sql, params).execute(pool).await?.rows_affected(),
        })
    }

    /// Run `statements` in one transaction: all or nothing.
    pub async fn batch(&self, statements: &[Statement]) -> Result<Vec<u64>, StorageError> {
        let mut affected = Vec::with_capacity(statements.len());
        match self {
            Self::Sqlite(pool) => {
                // A plain BEGIN takes the write lock late and loses to concurrent writers;
                // BEGIN IMMEDIATE takes it up front (waiting up to busy_timeout).
                let mut conn = pool.acquire().await?;
                conn.execute("BEGIN IMMEDIATE").await?;
                for s in statements {
                    match sqlite_query(&s.sql, &s.params).execute(&mut *conn).await {
                        Ok(r) => affected.push(r.rows_affected()),
                        Err(e) => {
                            let _ = conn.execute("ROLLBACK").await;
                            return Err(e.into());
                        }
                    }
                }
                if let Err(e) = conn.execute("COMMIT").await {
                    let _ = conn.execute("ROLLBACK").await;
                    return Err(e.into());
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
            Self::Sqlite(pool) => pool.close().await,
            Self::Postgres(pool) => pool.close().await,
        }
    }
}
