//! SQLite connections owned by the host, one lane per connection: a single writer (SQLite lets
//! one connection write at a time, so writes queue on a mutex here instead of sleeping in
//! SQLite's busy handler) and a set of `query_only` readers for statements that only read.
//!
//! Why not sqlx's pool: it tests every connection it takes back with a round trip to the
//! connection's worker thread and spawns a task to do so, which doubles the thread hops of an
//! indexed read. A lane is a mutex around a connection; a broken connection is dropped and
//! reopened on next use, and a transaction left open by a cancelled caller is rolled back
//! before the lane is handed out again.

use std::sync::atomic::{AtomicUsize, Ordering};

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection, Executor};
use tokio::sync::{Mutex, MutexGuard};

use super::StorageError;

#[derive(Default)]
struct Slot {
    conn: Option<SqliteConnection>,
    /// BEGIN was sent and no COMMIT or ROLLBACK is known to have ended it
    in_transaction: bool,
}

/// The writer and the readers of one SQLite file.
pub struct Lanes {
    options: SqliteConnectOptions,
    writer: Mutex<Slot>,
    readers: Box<[Mutex<Slot>]>,
    next: AtomicUsize,
}

impl std::fmt::Debug for Lanes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lanes")
            .field("readers", &self.readers.len())
            .finish_non_exhaustive()
    }
}

/// One connection, held until dropped.
pub struct Lane<'a> {
    slot: MutexGuard<'a, Slot>,
}

impl Lanes {
    /// Lanes over `options`; connections open on first use.
    pub fn new(options: SqliteConnectOptions, readers: usize) -> Self {
        Self {
            options,
            writer: Mutex::default(),
            readers: (0..readers.max(1)).map(|_| Mutex::default()).collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// The writing connection; callers queue for it.
    pub async fn writer(&self) -> Result<Lane<'_>, StorageError> {
        self.ready(self.writer.lock().await, false).await
    }

    /// A reading connection: a free one if there is one, else the next in turn.
    pub async fn reader(&self) -> Result<Lane<'_>, StorageError> {
        let n = self.readers.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let free = (0..n).find_map(|i| self.readers[(start + i) % n].try_lock().ok());
        let slot = match free {
            Some(slot) => slot,
            None => self.readers[start].lock().await,
        };
        self.ready(slot, true).await
    }

    async fn ready<'a>(
        &self,
        mut slot: MutexGuard<'a, Slot>,
        read_only: bool,
    ) -> Result<Lane<'a>, StorageError> {
        if slot.in_transaction {
            // A caller was cancelled between BEGIN and its end: nobody may write inside
            // its transaction. A connection that cannot roll back is replaced.
            if let Some(conn) = slot.conn.as_mut()
                && conn.execute("ROLLBACK").await.is_err()
            {
                slot.conn = None;
            }
            slot.in_transaction = false;
        }
        if slot.conn.is_none() {
            let options = if read_only {
                self.options.clone().pragma("query_only", "1")
            } else {
                self.options.clone()
            };
            slot.conn = Some(options.connect().await?);
        }
        Ok(Lane { slot })
    }

    /// Close every open connection, waiting for their current users.
    pub async fn close(&self) {
        for lane in std::iter::once(&self.writer).chain(self.readers.iter()) {
            if let Some(conn) = lane.lock().await.conn.take() {
                let _ = conn.close().await;
            }
        }
    }
}

impl Lane<'_> {
    pub fn conn(&mut self) -> Result<&mut SqliteConnection, StorageError> {
        self.slot
            .conn
            .as_mut()
            .ok_or_else(|| StorageError::Unavailable("the SQLite connection is closed".into()))
    }

    /// The outcome of using the connection; a connection that broke is dropped, to be
    /// reopened by its next user.
    pub fn outcome<T>(&mut self, result: Result<T, sqlx::Error>) -> Result<T, StorageError> {
        if let Err(sqlx::Error::Io(_) | sqlx::Error::WorkerCrashed | sqlx::Error::Protocol(_)) =
            &result
        {
            self.slot.conn = None;
        }
        result.map_err(StorageError::from)
    }

    /// Mark a transaction as open (`true`) or ended (`false`); see [`Lanes`].
    pub fn set_in_transaction(&mut self, open: bool) {
        self.slot.in_transaction = open;
    }
}
