//! SQLite reads on the calling thread: a few `query_only` connections that a read takes only
//! if one is free at once, and only for a small time budget.
//!
//! sqlx runs every SQLite connection on a thread of its own, so each statement costs two
//! cross-thread wake-ups; for an indexed read that is most of its time, and a pack instance
//! holds its pool slot while it waits. Here such a read runs where the request runs, through
//! rusqlite on the same libsqlite3 as sqlx.
//!
//! A read is declined (the caller then takes a reader lane, off-thread, with the busy
//! timeout and the usual error mapping) when every connection is in use, when the database
//! is busy (these connections never wait for a lock), when the statement outlasts
//! [`READ_BUDGET`] (the progress handler interrupts it, and for [`SLOW_FOR`] that connection
//! sends the same SQL straight to the lanes: the budget is wall time, so a quick read that lost
//! its core to another thread is given another chance later), and on any error, so that errors
//! are reported in one place.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, TryLockError};
use std::time::{Duration, Instant};

use rusqlite::types::ValueRef;
use rusqlite::{Connection, ErrorCode, OpenFlags};

use super::caller::Caller;
use super::sqlite_sandbox::{ConnSandbox, check_single};
use super::values::Declared;
use super::{Rows, SqlValue};

/// How long a read may hold the calling thread (a tokio worker) before it is interrupted
/// and sent off-thread. An indexed read takes a few microseconds.
pub const READ_BUDGET: Duration = Duration::from_millis(1);

/// SQLite virtual-machine steps between two looks at the clock.
const PROGRESS_STEPS: i32 = 1_000;

/// Statements each connection keeps prepared.
const PREPARED: usize = 64;

/// How long a statement that outlasted the budget goes straight to the lanes.
pub const SLOW_FOR: Duration = Duration::from_secs(30);

/// Slow statements each connection remembers; past this it forgets them all and relearns.
const SLOW_REMEMBERED: usize = 256;

/// The inline readers of one SQLite file.
pub struct InlineReaders {
    path: Option<PathBuf>,
    slots: Box<[Mutex<Option<Reader>>]>,
    next: AtomicUsize,
    slow_for: Duration,
    /// Reads interrupted for outlasting the budget, since start.
    interrupted: AtomicU64,
}

/// One connection, its running statement's deadline and the statements lately too slow for it.
struct Reader {
    conn: Connection,
    /// Nanoseconds after `epoch` past which the running statement is interrupted.
    deadline: Arc<AtomicU64>,
    epoch: Instant,
    /// When each was last interrupted.
    slow: HashMap<Box<str>, Instant>,
    sandbox: Arc<ConnSandbox>,
}

impl InlineReaders {
    /// `count` readers of the file at `path`, opened on first use; none for `None` (a
    /// database in memory, which other connections cannot open by path).
    pub fn new(path: Option<PathBuf>, count: usize) -> Self {
        let count = if path.is_some() { count.max(1) } else { 0 };
        Self {
            path,
            slots: (0..count).map(|_| Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
            slow_for: SLOW_FOR,
            interrupted: AtomicU64::new(0),
        }
    }

    /// The same, with slow statements remembered for `slow_for` instead of [`SLOW_FOR`].
    #[cfg(test)]
    pub fn remembering_slow_for(mut self, slow_for: Duration) -> Self {
        self.slow_for = slow_for;
        self
    }

    /// The rows of `sql` (tagged for `caller`), read here and now; `None` when declined (see
    /// the module).
    pub fn read(&self, caller: &Caller, sql: &str, params: &[SqlValue]) -> Option<Rows> {
        let path = self.path.as_ref()?;
        let n = self.slots.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let mut slot = (0..n).find_map(|i| match self.slots[(start + i) % n].try_lock() {
            Ok(slot) => Some(slot),
            Err(TryLockError::WouldBlock) => None,
            Err(TryLockError::Poisoned(poisoned)) => {
                // a panic mid-read: the connection may be mid-statement, so start afresh
                let mut slot = poisoned.into_inner();
                *slot = None;
                self.slots[(start + i) % n].clear_poison();
                Some(slot)
            }
        })?;
        if slot.is_none() {
            *slot = Some(
                Reader::open(path)
                    .inspect_err(|e| tracing::debug!(error = %e, "inline SQLite reader not opened"))
                    .ok()?,
            );
        }
        let reader = slot.as_mut()?;
        match reader.read(caller, sql, params, self.slow_for) {
            Ok(Read::Rows(rows)) => Some(rows),
            Ok(Read::Slow | Read::Refused) => None,
            Ok(Read::Interrupted) => {
                self.interrupted.fetch_add(1, Ordering::Relaxed);
                None
            }
            Err(e) => {
                if fatal(&e) {
                    tracing::warn!(error = %e, "inline SQLite reader dropped; reopening on next use");
                    *slot = None;
                } else {
                    tracing::debug!(error = %e, "inline SQLite read declined");
                }
                None
            }
        }
    }

    /// Reads interrupted for outlasting the budget, since start.
    #[cfg(test)]
    pub fn interrupted(&self) -> u64 {
        self.interrupted.load(Ordering::Relaxed)
    }

    /// Close every connection (waiting for reads in progress).
    pub fn close(&self) {
        for slot in self.slots.iter() {
            let mut slot = slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            *slot = None;
        }
    }
}

/// A read's end, short of an error.
enum Read {
    Rows(Rows),
    /// Not run: the statement lately outlasted the budget.
    Slow,
    /// Run, and stopped at the budget.
    Interrupted,
    /// Not run: the sandbox refused it (the lanes report why).
    Refused,
}

impl Reader {
    fn open(path: &PathBuf) -> rusqlite::Result<Self> {
        // No CREATE: the writer creates the file (and puts it in WAL mode) first.
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::ZERO)?;
        conn.pragma_update(None, "query_only", 1)?;
        conn.set_prepared_statement_cache_capacity(PREPARED);
        // SAFETY: the connection is open and this thread's alone.
        let sandbox = unsafe { ConnSandbox::install(raw(&conn)?) };
        let deadline = Arc::new(AtomicU64::new(u64::MAX));
        let epoch = Instant::now();
        let running = Arc::clone(&deadline);
        conn.progress_handler(
            PROGRESS_STEPS,
            Some(move || nanos_since(epoch) > running.load(Ordering::Relaxed)),
        );
        Ok(Self {
            conn,
            deadline,
            epoch,
            slow: HashMap::new(),
            sandbox,
        })
    }

    fn read(
        &mut self,
        caller: &Caller,
        sql: &str,
        params: &[SqlValue],
        slow_for: Duration,
    ) -> rusqlite::Result<Read> {
        if !self.slow.is_empty()
            && let Some(since) = self.slow.get(sql)
        {
            if since.elapsed() < slow_for {
                return Ok(Read::Slow);
            }
            self.slow.remove(sql);
        }
        let _entered = self.sandbox.enter(caller);
        if caller.needs_single_check(sql) {
            // SAFETY: the connection is open and used by this thread alone while we hold it.
            let checked = unsafe { check_single(raw(&self.conn)?, caller, sql) };
            if checked.is_err() {
                return Ok(Read::Refused);
            }
        }
        let budget = u64::try_from(READ_BUDGET.as_nanos()).unwrap_or(u64::MAX);
        self.deadline.store(
            nanos_since(self.epoch).saturating_add(budget),
            Ordering::Relaxed,
        );
        let result = query(&self.conn, sql, params);
        self.deadline.store(u64::MAX, Ordering::Relaxed);
        match result {
            Ok(rows) => Ok(Read::Rows(rows)),
            Err(e) if code(&e) == Some(ErrorCode::OperationInterrupted) => {
                if self.slow.len() >= SLOW_REMEMBERED {
                    self.slow.clear();
                }
                self.slow.insert(sql.into(), Instant::now());
                tracing::debug!(sql, "read outlasted the inline budget; it goes off-thread");
                Ok(Read::Interrupted)
            }
            Err(e) => Err(e),
        }
    }
}

/// The raw handle of a rusqlite connection.
fn raw(conn: &Connection) -> rusqlite::Result<std::ptr::NonNull<rusqlite::ffi::sqlite3>> {
    // SAFETY: only the pointer is read; the connection stays open while it is used.
    std::ptr::NonNull::new(unsafe { conn.handle() }).ok_or_else(|| rusqlite::Error::InvalidQuery)
}

fn nanos_since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

fn code(e: &rusqlite::Error) -> Option<ErrorCode> {
    match e {
        rusqlite::Error::SqliteFailure(failure, _) => Some(failure.code),
        _ => None,
    }
}

/// Errors after which the connection is not worth keeping.
fn fatal(e: &rusqlite::Error) -> bool {
    matches!(
        code(e),
        Some(
            ErrorCode::CannotOpen
                | ErrorCode::NotADatabase
                | ErrorCode::DatabaseCorrupt
                | ErrorCode::SystemIoFailure
                | ErrorCode::PermissionDenied
        )
    )
}

/// Prepare (or reuse), bind, step and decode, with the same typing as the lanes' decoder.
fn query(conn: &Connection, sql: &str, params: &[SqlValue]) -> rusqlite::Result<Rows> {
    let mut stmt = conn.prepare_cached(sql)?;
    for index in 1..=stmt.parameter_count() {
        // `$N` and `?N` name the N-th parameter wherever they appear; a bare `?` is the next.
        let n = match stmt.parameter_name(index) {
            None => index,
            Some(name) => name
                .get(1..)
                .and_then(|digits| digits.parse::<usize>().ok())
                .ok_or_else(|| rusqlite::Error::InvalidParameterName(name.to_string()))?,
        };
        let value = n
            .checked_sub(1)
            .and_then(|i| params.get(i))
            .ok_or(rusqlite::Error::InvalidParameterCount(n, params.len()))?;
        match value {
            SqlValue::Boolean(v) => stmt.raw_bind_parameter(index, v)?,
            SqlValue::Int(v) => stmt.raw_bind_parameter(index, v)?,
            SqlValue::Float(v) => stmt.raw_bind_parameter(index, v)?,
            SqlValue::Text(v) => stmt.raw_bind_parameter(index, v.as_deref())?,
            SqlValue::Blob(v) => stmt.raw_bind_parameter(index, v.as_deref())?,
        }
    }
    let mut rows = stmt.raw_query();
    let mut out = Rows::default();
    let mut declared: Vec<Declared> = Vec::new();
    while let Some(row) = rows.next()? {
        if out.columns.is_empty() {
            let columns = row.as_ref().columns();
            out.columns = columns.iter().map(|c| c.name().to_string()).collect();
            declared = columns
                .iter()
                .map(|c| Declared::of(c.decl_type().unwrap_or("")))
                .collect();
        }
        let mut values = Vec::with_capacity(declared.len());
        for (i, decl) in declared.iter().enumerate() {
            values.push(match row.get_ref(i)? {
                ValueRef::Null => decl.null(),
                ValueRef::Integer(n) => decl.integer(n),
                ValueRef::Real(x) => SqlValue::Float(Some(x)),
                ValueRef::Text(bytes) => SqlValue::Text(Some(
                    std::str::from_utf8(bytes)
                        .map_err(rusqlite::Error::Utf8Error)?
                        .to_string(),
                )),
                ValueRef::Blob(bytes) => SqlValue::Blob(Some(bytes.to_vec())),
            });
        }
        out.rows.push(values);
    }
    Ok(out)
}

/// A read far over the budget (it counts to two million), for tests.
#[cfg(test)]
pub const SLOW_READ: &str = "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c \
                             WHERE n < 2000000) SELECT COUNT(*) AS n FROM c";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slow_statement_is_sent_elsewhere_for_a_while_then_tried_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        Connection::open(&path).unwrap();
        let readers =
            InlineReaders::new(Some(path), 1).remembering_slow_for(Duration::from_millis(300));
        assert_eq!(readers.read(&Caller::host(), SLOW_READ, &[]), None);
        assert_eq!(readers.interrupted(), 1, "run, and interrupted");
        assert_eq!(readers.read(&Caller::host(), SLOW_READ, &[]), None);
        assert_eq!(readers.interrupted(), 1, "remembered: not run again");
        std::thread::sleep(Duration::from_millis(350));
        assert_eq!(readers.read(&Caller::host(), SLOW_READ, &[]), None);
        assert_eq!(readers.interrupted(), 2, "forgotten: tried again");
        let quick = readers
            .read(&Caller::host(), "SELECT 1 AS one", &[])
            .unwrap();
        assert_eq!(quick.rows, vec![vec![SqlValue::Int(Some(1))]]);
    }

    #[test]
    fn in_memory_databases_and_missing_files_are_declined() {
        assert_eq!(
            InlineReaders::new(None, 2).read(&Caller::host(), "SELECT 1", &[]),
            None
        );
        let dir = tempfile::tempdir().unwrap();
        let readers = InlineReaders::new(Some(dir.path().join("absent.db")), 1);
        assert_eq!(readers.read(&Caller::host(), "SELECT 1", &[]), None);
        assert!(
            !dir.path().join("absent.db").exists(),
            "a reader creates nothing"
        );
    }
}
