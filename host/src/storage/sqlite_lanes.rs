//! SQLite connections owned by the host: one writer and a set of `query_only` readers.
//!
//! - **The writer** is a thread of its own (a single-threaded runtime owning the one writing
//!   connection) that runs write jobs in arrival order. SQLite lets one connection write at a
//!   time: queueing here means no writer ever sleeps in SQLite's busy handler, and the
//!   connection is held only while the job runs, never while the requesting task waits for a
//!   worker thread of the main runtime. A job runs to its end even if its requester is
//!   cancelled, so a transaction is never left half done.
//! - **Readers** are lanes: a mutex around a connection, taken by statements the table sandbox
//!   proved read-only. sqlx's pool would test every connection it takes back with a round trip
//!   to the connection's thread (and spawn a task to do it), doubling the thread hops of an
//!   indexed read.
//!
//! - **Inline readers** (`sqlite_inline`) come before the reader lanes: a read that finds one
//!   free runs on the calling thread, within a small time budget.
//!
//! A broken connection is dropped and reopened by its next user.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection};
use tokio::sync::{Mutex, MutexGuard, mpsc, oneshot};

use super::caller::Caller;
use super::db::DbLimits;
use super::sqlite_inline::InlineReaders;
use super::sqlite_sandbox::{ConnSandbox, PROGRESS_STEPS, check_single};
use super::{Rows, SqlValue, StorageError};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A failed write job; `poisoned` when the connection must not be used again (it broke, or a
/// transaction on it could not be ended).
pub struct JobError {
    pub error: sqlx::Error,
    pub poisoned: bool,
}

impl From<sqlx::Error> for JobError {
    fn from(error: sqlx::Error) -> Self {
        let poisoned = broken(&error);
        Self { error, poisoned }
    }
}

fn broken(error: &sqlx::Error) -> bool {
    matches!(
        error,
        sqlx::Error::Io(_) | sqlx::Error::WorkerCrashed | sqlx::Error::Protocol(_)
    )
}

/// A write job: given the connection (or why it could not be opened), answers whether the
/// connection is poisoned.
type Job = Box<dyn for<'c> FnOnce(Result<&'c mut Guarded, &'c str>) -> BoxFuture<'c, bool> + Send>;

enum Message {
    Job(Caller, Arc<Ticket>, Job),
    Close(oneshot::Sender<()>),
}

/// A queued write's state: the writer starts it, or its requester gives up on it first (the
/// acquire bound passed) and the writer then skips it. Whichever comes first wins.
struct Ticket(AtomicU8);

const QUEUED: u8 = 0;
const STARTED: u8 = 1;
const ABANDONED: u8 = 2;

impl Ticket {
    fn take(&self, to: u8) -> bool {
        self.0
            .compare_exchange(QUEUED, to, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

/// Writes that may wait for the writer. A write must find a place in the queue and then be
/// started within the acquire bound (`database.acquire_timeout_ms`), or it is refused as
/// unavailable (the caller answers 503) rather than queue without bound under overload.
const QUEUED_WRITES: usize = 1024;

/// The writer and the readers of one SQLite file.
pub struct Lanes {
    options: SqliteConnectOptions,
    writer: mpsc::Sender<Message>,
    readers: Box<[Mutex<Option<Guarded>>]>,
    next: AtomicUsize,
    inline: InlineReaders,
    limits: DbLimits,
}

impl std::fmt::Debug for Lanes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lanes")
            .field("readers", &self.readers.len())
            .finish_non_exhaustive()
    }
}

/// A connection with its table sandbox installed.
pub struct Guarded {
    pub conn: SqliteConnection,
    pub sandbox: Arc<ConnSandbox>,
}

impl Guarded {
    /// Open a connection and install the sandbox: the authorizer, no attached databases,
    /// a progress handler that stops a statement at its caller's deadline, and a busy
    /// handler that retries a locked database up to `busy` (`sqlite_busy`).
    pub async fn open(options: &SqliteConnectOptions, busy: Duration) -> Result<Self, sqlx::Error> {
        let mut conn = options.connect().await?;
        let mut handle = conn.lock_handle().await?;
        // SAFETY: the handle is locked out from the connection's worker thread.
        let sandbox = unsafe { ConnSandbox::install(handle.as_raw_handle()) };
        // SAFETY: as above.
        unsafe { super::sqlite_busy::install(handle.as_raw_handle(), Arc::clone(&sandbox), busy) };
        let watched = Arc::clone(&sandbox);
        handle.set_progress_handler(PROGRESS_STEPS, move || !watched.past_deadline());
        drop(handle);
        Ok(Self { conn, sandbox })
    }

    /// Prove `sql` a single statement for `caller` on this connection, unless known. The
    /// refusal travels as `sqlx::Error::Configuration` (a connection it does not break) and
    /// becomes its `StorageError` there.
    pub async fn check(&mut self, caller: &Caller, sql: &str) -> Result<(), sqlx::Error> {
        if !caller.needs_single_check(sql) {
            return Ok(());
        }
        let mut handle = self.conn.lock_handle().await?;
        // SAFETY: the handle is locked out from the connection's worker thread.
        unsafe { check_single(handle.as_raw_handle(), caller, sql) }
            .map_err(|refusal| sqlx::Error::Configuration(Box::new(refusal)))
    }
}

/// A reading connection, held until dropped. A lane dropped mid-statement (its caller went
/// away) drops its connection: the statement stops at its deadline, on a connection no one
/// else will use.
pub struct Lane<'a> {
    slot: MutexGuard<'a, Option<Guarded>>,
    busy: bool,
}

impl Drop for Lane<'_> {
    fn drop(&mut self) {
        if self.busy {
            *self.slot = None;
        }
    }
}

impl Lanes {
    /// Lanes over `options`; the writer thread starts now, connections open on first use.
    /// `inline` readers of the file at `path` (none for a database in memory) come first.
    pub fn new(
        options: SqliteConnectOptions,
        readers: usize,
        path: Option<std::path::PathBuf>,
        inline: usize,
        limits: DbLimits,
    ) -> Result<Self, StorageError> {
        let (writer, jobs) = mpsc::channel(QUEUED_WRITES);
        // Commits never checkpoint (that would stall the queue on an fsync): a task beside
        // the writer does, on a connection of its own.
        let writer_options = options.clone().pragma("wal_autocheckpoint", "0");
        let checkpoint_options = options.clone();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || write_loop(writer_options, checkpoint_options, limits.busy, jobs))
            .map_err(|e| StorageError::Unavailable(format!("cannot start the writer: {e}")))?;
        Ok(Self {
            options: options.pragma("query_only", "1"),
            writer,
            readers: (0..readers.max(1)).map(|_| Mutex::default()).collect(),
            next: AtomicUsize::new(0),
            inline: InlineReaders::new(path, inline),
            limits,
        })
    }

    /// A read on the calling thread, if an inline reader is free and the read is quick;
    /// `None` sends it to [`Lanes::reader`].
    pub fn read_inline(&self, caller: &Caller, sql: &str, params: &[SqlValue]) -> Option<Rows> {
        self.inline.read(caller, sql, params)
    }

    /// Run `job` for `caller` on the writing connection, after the jobs queued before it.
    pub async fn write<R, F>(&self, caller: &Caller, job: F) -> Result<R, StorageError>
    where
        R: Send + 'static,
        F: for<'c> FnOnce(&'c mut Guarded) -> BoxFuture<'c, Result<R, JobError>> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            Box::pin(async move {
                let conn = match conn {
                    Ok(conn) => conn,
                    Err(why) => {
                        let _ = reply.send(Err(StorageError::Unavailable(format!(
                            "cannot open the SQLite database: {why}"
                        ))));
                        return false;
                    }
                };
                let (result, poisoned) = match job(conn).await {
                    Ok(value) => (Ok(value), false),
                    Err(e) => (Err(StorageError::from(e.error)), e.poisoned),
                };
                let _ = reply.send(result);
                poisoned
            })
        });
        let stopped = || StorageError::Unavailable("the SQLite writer has stopped".into());
        let waited = || {
            StorageError::Unavailable(format!(
                "the SQLite writer did not take the write within {} ms",
                self.limits.acquire.as_millis()
            ))
        };
        let until = tokio::time::Instant::now() + self.limits.acquire;
        let ticket = Arc::new(Ticket(AtomicU8::new(QUEUED)));
        let message = Message::Job(caller.clone(), Arc::clone(&ticket), job);
        match tokio::time::timeout_at(until, self.writer.send(message)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(stopped()),
            Err(_) => {
                return Err(StorageError::Unavailable(format!(
                    "{QUEUED_WRITES} writes are already waiting for the database"
                )));
            }
        }
        let mut answer = std::pin::pin!(answer);
        match tokio::time::timeout_at(until, answer.as_mut()).await {
            Ok(done) => return done.map_err(|_| stopped())?,
            // not started yet: given up, the writer skips it
            Err(_) if ticket.take(ABANDONED) => return Err(waited()),
            // started: it runs to its end (bounded by the caller's deadline)
            Err(_) => {}
        }
        answer.await.map_err(|_| stopped())?
    }

    /// Places left in the write queue.
    #[cfg(test)]
    pub fn write_room(&self) -> usize {
        self.writer.capacity()
    }

    /// A reading connection: a free one if there is one, else the next in turn.
    pub async fn reader(&self) -> Result<Lane<'_>, StorageError> {
        let n = self.readers.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let free = (0..n).find_map(|i| self.readers[(start + i) % n].try_lock().ok());
        let mut slot = match free {
            Some(slot) => slot,
            None => tokio::time::timeout(self.limits.acquire, self.readers[start].lock())
                .await
                .map_err(|_| {
                    StorageError::Unavailable(format!(
                        "no SQLite reader was free within {} ms",
                        self.limits.acquire.as_millis()
                    ))
                })?,
        };
        if slot.is_none() {
            *slot = Some(Guarded::open(&self.options, self.limits.busy).await?);
        }
        Ok(Lane { slot, busy: false })
    }

    /// Reader connections in use and open-but-idle right now (for `/metrics`).
    pub fn reader_use(&self) -> (usize, usize) {
        self.readers
            .iter()
            .fold((0, 0), |(busy, idle), lane| match lane.try_lock() {
                Ok(slot) if slot.is_some() => (busy, idle + 1),
                Ok(_) => (busy, idle),
                Err(_) => (busy + 1, idle),
            })
    }

    /// Close every open connection, after the queued writes and the current reads.
    pub async fn close(&self) {
        self.inline.close();
        let (done, closed) = oneshot::channel();
        if self.writer.send(Message::Close(done)).await.is_ok() {
            let _ = closed.await;
        }
        for lane in self.readers.iter() {
            if let Some(guarded) = lane.lock().await.take() {
                let _ = guarded.conn.close().await;
            }
        }
    }
}

/// How often the write-ahead log is copied back into the database file.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// Checkpoint the write-ahead log now and then, without blocking writers (PASSIVE), so it
/// neither grows without bound nor makes a commit wait for the disk.
async fn checkpoints(options: SqliteConnectOptions) {
    let mut conn: Option<SqliteConnection> = None;
    let mut every = tokio::time::interval_at(
        tokio::time::Instant::now() + CHECKPOINT_EVERY,
        CHECKPOINT_EVERY,
    );
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if conn.is_none() {
            conn = options.connect().await.ok();
        }
        if let Some(c) = conn.as_mut()
            && let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(c)
                .await
        {
            tracing::warn!(error = %e, "SQLite checkpoint failed");
            conn = None;
        }
    }
}

/// The writer thread: open the connection when needed, run jobs in order, drop a poisoned
/// connection; checkpoints beside. Ends when every sender is gone.
fn write_loop(
    options: SqliteConnectOptions,
    checkpoint_options: SqliteConnectOptions,
    busy: Duration,
    mut jobs: mpsc::Receiver<Message>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the SQLite writer runtime");
            return;
        }
    };
    // Checkpoints start once the writer has opened (and so created) the database: a lazily
    // opened database that is never written is never touched.
    let mut checkpointer = Checkpointer {
        options: checkpoint_options,
        task: None,
    };
    // A job that panics loses its own answer (its caller hears the writer stopped), not the
    // writer: serving starts again, with a new connection.
    while std::panic::catch_unwind(AssertUnwindSafe(|| {
        runtime.block_on(serve(&options, busy, &mut jobs, &mut checkpointer));
    }))
    .is_err()
    {
        tracing::error!("a SQLite write job panicked; the writer goes on with a new connection");
    }
}

/// The checkpoint task beside the writer, once started.
struct Checkpointer {
    options: SqliteConnectOptions,
    task: Option<tokio::task::JoinHandle<()>>,
}

async fn serve(
    options: &SqliteConnectOptions,
    busy: Duration,
    jobs: &mut mpsc::Receiver<Message>,
    checkpointer: &mut Checkpointer,
) {
    let mut conn: Option<Guarded> = None;
    while let Some(message) = jobs.recv().await {
        match message {
            Message::Job(caller, ticket, job) => {
                if !ticket.take(STARTED) {
                    continue; // its requester gave up waiting
                }
                let mut open_error = String::new();
                if conn.is_none() {
                    match Guarded::open(options, busy).await {
                        Ok(c) => conn = Some(c),
                        Err(e) => open_error = e.to_string(),
                    }
                }
                if conn.is_some() && checkpointer.task.is_none() {
                    checkpointer.task =
                        Some(tokio::spawn(checkpoints(checkpointer.options.clone())));
                }
                let _entered = conn.as_ref().map(|g| g.sandbox.enter(&caller));
                let target = conn.as_mut().ok_or(open_error.as_str());
                if job(target).await {
                    tracing::warn!("SQLite writer connection dropped; reopening on next use");
                    conn = None;
                }
            }
            Message::Close(done) => {
                if let Some(task) = checkpointer.task.take() {
                    task.abort();
                }
                if let Some(g) = conn.take() {
                    let _ = g.conn.close().await;
                }
                let _ = done.send(());
            }
        }
    }
}

impl Lane<'_> {
    /// The connection, for one use whose result goes to [`Lane::outcome`].
    pub fn conn(&mut self) -> Result<&mut Guarded, StorageError> {
        self.busy = true;
        self.slot
            .as_mut()
            .ok_or_else(|| StorageError::Unavailable("the SQLite connection is closed".into()))
    }

    /// The outcome of using the connection; a connection that broke is dropped, to be
    /// reopened by its next user.
    pub fn outcome<T>(&mut self, result: Result<T, sqlx::Error>) -> Result<T, StorageError> {
        self.busy = false;
        if let Err(e) = &result
            && broken(e)
        {
            *self.slot = None;
        }
        result.map_err(StorageError::from)
    }
}
