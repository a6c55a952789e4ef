//! The table sandbox on SQLite, enforced by SQLite itself: every connection that may run a
//! pack's SQL carries an authorizer (`sqlite3_set_authorizer`) that consults the scope the
//! connection is in. In a pack's scope a statement may read and write only that pack's own
//! tables in `main` and call functions from an allow-list; ATTACH, PRAGMA, transactions and
//! schema changes are refused. A connection outside any scope refuses everything, so a path
//! that forgot to enter one fails closed. The deadline of the scope stops a statement through
//! the progress handler.
//!
//! The authorizer runs when SQLite prepares a statement (including a re-prepare after a schema
//! change), so statements are cached per pack: a pack's SQL reaches the statement caches
//! tagged with the pack's name (see [`Caller::tag`]) and one pack never reuses a statement
//! another pack's scope approved.

use std::ffi::{CStr, c_char, c_int, c_void};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rusqlite::ffi;

use super::caller::{Caller, PackTables};

/// Whom a connection's statements are for right now.
#[derive(Debug, Default)]
enum Active {
    /// between statements: everything is refused
    #[default]
    Idle,
    Host,
    Pack(Arc<PackTables>),
}

/// The state one connection's authorizer and progress handler read.
#[derive(Debug)]
pub struct ConnSandbox {
    active: Mutex<Active>,
    /// nanoseconds after `epoch` past which the running statement is interrupted
    deadline: AtomicU64,
    epoch: Instant,
}

/// Virtual-machine steps between two looks at the clock.
pub const PROGRESS_STEPS: i32 = 1_000;

impl ConnSandbox {
    /// Install the sandbox on the raw connection `db`: the authorizer and no attached
    /// databases. The progress handler is the caller's to install (its library owns it),
    /// calling [`ConnSandbox::past_deadline`].
    ///
    /// # Safety
    /// `db` must be an open connection, not used by another thread during this call. The
    /// returned sandbox is handed to SQLite for the connection's whole life: one small
    /// allocation per opened connection is never freed (connections open at start and after
    /// a failure only).
    pub unsafe fn install(db: NonNull<ffi::sqlite3>) -> Arc<Self> {
        let sandbox = Arc::new(Self {
            active: Mutex::default(),
            deadline: AtomicU64::new(u64::MAX),
            epoch: Instant::now(),
        });
        let user_data = Arc::into_raw(Arc::clone(&sandbox)) as *mut c_void;
        // SAFETY: `db` is open (the caller's promise); `user_data` stays valid for ever.
        unsafe {
            ffi::sqlite3_set_authorizer(db.as_ptr(), Some(authorize), user_data);
            ffi::sqlite3_limit(db.as_ptr(), ffi::SQLITE_LIMIT_ATTACHED, 0);
        }
        sandbox
    }

    /// Run the connection's statements for `caller` until the guard drops.
    pub fn enter(self: &Arc<Self>, caller: &Caller) -> Entered {
        let active = match &caller.pack {
            Some(p) => Active::Pack(Arc::clone(p)),
            None => Active::Host,
        };
        *self.active.lock().unwrap_or_else(|p| p.into_inner()) = active;
        let deadline = caller.deadline.map_or(u64::MAX, |d| {
            let after = d.saturating_duration_since(self.epoch).as_nanos();
            u64::try_from(after).unwrap_or(u64::MAX)
        });
        self.deadline.store(deadline, Ordering::Relaxed);
        Entered {
            sandbox: Arc::clone(self),
        }
    }

    /// For the progress handler: the running statement's scope has run out of time.
    pub fn past_deadline(&self) -> bool {
        let now = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        now > self.deadline.load(Ordering::Relaxed)
    }

    fn decide(&self, action: c_int, args: [Option<&str>; 4]) -> c_int {
        let active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        match &*active {
            Active::Idle => ffi::SQLITE_DENY,
            Active::Host => ffi::SQLITE_OK,
            Active::Pack(tables) => {
                if pack_may(tables, action, args) {
                    ffi::SQLITE_OK
                } else {
                    tracing::debug!(pack = %tables.pack, action, ?args, "SQLite authorizer refused");
                    ffi::SQLITE_DENY
                }
            }
        }
    }
}

/// The scope of [`ConnSandbox::enter`]; dropping it makes the connection idle again.
pub struct Entered {
    sandbox: Arc<ConnSandbox>,
}

impl Drop for Entered {
    fn drop(&mut self) {
        // The deadline stays: a statement whose caller went away still stops at it.
        *self
            .sandbox
            .active
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Active::Idle;
    }
}

/// The authorizer SQLite calls while preparing a statement.
unsafe extern "C" fn authorize(
    user_data: *mut c_void,
    action: c_int,
    a: *const c_char,
    b: *const c_char,
    c: *const c_char,
    d: *const c_char,
) -> c_int {
    // SAFETY: `user_data` is the never-freed sandbox `install` gave SQLite.
    let sandbox = unsafe { &*(user_data as *const ConnSandbox) };
    // SAFETY: SQLite passes NUL-terminated strings or NULL.
    let text = |p: *const c_char| {
        (!p.is_null())
            .then(|| unsafe { CStr::from_ptr(p) }.to_str().ok())
            .flatten()
    };
    let decision =
        std::panic::catch_unwind(|| sandbox.decide(action, [text(a), text(b), text(c), text(d)]));
    decision.unwrap_or(ffi::SQLITE_DENY)
}

/// What a pack's statement may do: SELECT, read and write its own tables in `main`, read
/// the statement's own CTEs and subqueries (SQLite names no database for those: their rows
/// came from reads authorized one by one), call allowed functions, recurse in a CTE (the
/// deadline bounds it). Nothing else.
fn pack_may(tables: &PackTables, action: c_int, [a, b, db, _trigger]: [Option<&str>; 4]) -> bool {
    let own = |table: Option<&str>| db == Some("main") && table.is_some_and(|t| tables.owns(t));
    match action {
        ffi::SQLITE_SELECT | ffi::SQLITE_RECURSIVE => true,
        ffi::SQLITE_READ => db.is_none() || own(a),
        ffi::SQLITE_INSERT | ffi::SQLITE_UPDATE | ffi::SQLITE_DELETE => own(a),
        ffi::SQLITE_FUNCTION => b.is_some_and(allowed_function),
        _ => false,
    }
}

/// Functions a pack's SQL may call: SQLite's core scalar, aggregate, window, date and time,
/// math and JSON functions. Not: `load_extension`, `sqlite_*` (build and schema details),
/// `fts3_tokenizer`, anything an extension adds.
fn allowed_function(name: &str) -> bool {
    #[rustfmt::skip]
    const ALLOWED: &[&str] = &[
        "abs", "changes", "char", "coalesce", "concat", "concat_ws", "format", "glob", "hex",
        "ifnull", "iif", "instr", "last_insert_rowid", "length", "like", "likelihood", "likely",
        "lower", "ltrim", "max", "min", "nullif", "octet_length", "printf", "quote", "random",
        "randomblob", "replace", "round", "rtrim", "sign", "substr", "substring", "total_changes",
        "trim", "typeof", "unhex", "unicode", "unistr", "unlikely", "upper", "zeroblob", "avg",
        "count", "group_concat", "string_agg", "sum", "total", "row_number", "rank", "dense_rank",
        "percent_rank", "cume_dist", "ntile", "lag", "lead", "first_value", "last_value",
        "nth_value", "date", "time", "datetime", "julianday", "unixepoch", "strftime", "timediff",
        "current_date", "current_time", "current_timestamp", "acos", "acosh", "asin", "asinh",
        "atan", "atan2", "atanh", "ceil", "ceiling", "cos", "cosh", "degrees", "exp", "floor",
        "ln", "log", "log10", "log2", "mod", "pi", "pow", "power", "radians", "sin", "sinh",
        "sqrt", "tan", "tanh", "trunc", "json", "jsonb", "json_array", "jsonb_array",
        "json_array_length", "json_error_position", "json_extract", "jsonb_extract", "->", "->>",
        "json_insert", "jsonb_insert", "json_object", "jsonb_object", "json_patch", "jsonb_patch",
        "json_pretty", "json_remove", "jsonb_remove", "json_replace", "jsonb_replace", "json_set",
        "jsonb_set", "json_type", "json_valid", "json_quote", "json_group_array",
        "jsonb_group_array", "json_group_object", "jsonb_group_object",
    ];
    let name = name.to_ascii_lowercase();
    ALLOWED.contains(&name.as_str())
}

/// Why a statement was not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("one statement per call: the SQL goes on after its first statement")]
    MultipleStatements,
    #[error("{0}")]
    Prepare(String),
    #[error("not authorized: {0}")]
    Denied(String),
}

/// Prove `sql` holds exactly one statement, as SQLite itself splits it: prepare it, then
/// whatever follows it, which must prepare to nothing (whitespace, comments, semicolons). The
/// connection's authorizer vets what is prepared. Remembered per pack once proved.
///
/// # Safety
/// `db` must be an open connection that no other thread uses during the call.
pub unsafe fn check_single(
    db: NonNull<ffi::sqlite3>,
    caller: &Caller,
    sql: &str,
) -> Result<(), Refusal> {
    let Some(tables) = &caller.pack else {
        return Ok(());
    };
    if tables.known_single(sql) {
        return Ok(());
    }
    // SAFETY: the caller's promise.
    let (_, mut rest) = unsafe { prepare_first(db, sql.as_bytes()) }?;
    while !rest.iter().all(u8::is_ascii_whitespace) {
        // SAFETY: as above.
        let (found, next) =
            unsafe { prepare_first(db, rest) }.map_err(|_| Refusal::MultipleStatements)?;
        if found || next.len() == rest.len() {
            return Err(Refusal::MultipleStatements);
        }
        rest = next;
    }
    tables.remember_single(sql);
    Ok(())
}

/// Prepare (and finalize) the first statement of `sql`: whether there was one, and what
/// follows it.
unsafe fn prepare_first(db: NonNull<ffi::sqlite3>, sql: &[u8]) -> Result<(bool, &[u8]), Refusal> {
    let len =
        c_int::try_from(sql.len()).map_err(|_| Refusal::Prepare("the SQL is too long".into()))?;
    let mut stmt: *mut ffi::sqlite3_stmt = std::ptr::null_mut();
    let mut tail: *const c_char = std::ptr::null();
    // SAFETY: `sql` is valid for `len` bytes; SQLite writes the two out-pointers.
    let rc = unsafe {
        ffi::sqlite3_prepare_v2(db.as_ptr(), sql.as_ptr().cast(), len, &mut stmt, &mut tail)
    };
    if rc != ffi::SQLITE_OK {
        // SAFETY: the connection is open; the message is NUL-terminated.
        let message = unsafe { CStr::from_ptr(ffi::sqlite3_errmsg(db.as_ptr())) }
            .to_string_lossy()
            .into_owned();
        return Err(if rc & 0xff == ffi::SQLITE_AUTH {
            Refusal::Denied(message)
        } else {
            Refusal::Prepare(message)
        });
    }
    let found = !stmt.is_null();
    // SAFETY: `stmt` is ours (or NULL, which finalize accepts).
    unsafe { ffi::sqlite3_finalize(stmt) };
    let used = if tail.is_null() {
        sql.len()
    } else {
        (tail as usize)
            .saturating_sub(sql.as_ptr() as usize)
            .min(sql.len())
    };
    Ok((found, &sql[used..]))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::storage::{Access, Db, SqlValue, Statement, StorageError};

    /// A database with the pack's table `mine` and a foreign `theirs` holding a secret.
    async fn db() -> (tempfile::TempDir, Db, Caller) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let db = Db::connect(&url, 4).await.unwrap();
        let host = Caller::host();
        for sql in [
            "CREATE TABLE mine (id TEXT PRIMARY KEY, note TEXT)",
            "CREATE TABLE theirs (name TEXT, secret TEXT)",
            "INSERT INTO mine VALUES ('a', 'mine')",
            "INSERT INTO theirs VALUES ('x', 'the-secret')",
        ] {
            db.execute(&host, sql, &[]).await.unwrap();
        }
        let pack = Caller::pack(
            Arc::new(PackTables::new("probe", ["mine".to_string()])),
            Instant::now() + Duration::from_secs(60),
        );
        (dir, db, pack)
    }

    async fn read(
        db: &Db,
        caller: &Caller,
        sql: &str,
    ) -> Result<crate::storage::Rows, StorageError> {
        db.query(caller, sql, &[], Access::Read).await
    }

    #[tokio::test]
    async fn a_pack_reads_and_writes_its_own_tables() {
        let (_dir, db, pack) = db().await;
        let rows = read(
            &db,
            &pack,
            "SELECT id, upper(note) AS n, count(*) OVER () AS c FROM mine",
        )
        .await
        .unwrap();
        assert_eq!(rows.rows[0][0], SqlValue::Text(Some("a".into())));
        read(
            &db,
            &pack,
            "WITH m AS (SELECT id FROM mine) SELECT json_object('id', id) FROM m",
        )
        .await
        .unwrap();
        read(&db, &pack, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 10) SELECT count(*) FROM c").await.unwrap();
        let upsert = "INSERT INTO mine (id, note) VALUES ($1, 'n') ON CONFLICT (id) DO UPDATE SET note = excluded.note RETURNING id";
        let params = [SqlValue::Text(Some("a".into()))];
        db.query(&pack, upsert, &params, Access::Write)
            .await
            .unwrap();
        assert_eq!(
            db.execute(&pack, "DELETE FROM mine WHERE id = 'zz'", &[])
                .await
                .unwrap(),
            0
        );
        let batch = [Statement {
            sql: "UPDATE mine SET note = 'b'".into(),
            params: vec![],
        }];
        assert_eq!(db.batch(&pack, &batch).await.unwrap(), [1]);
        // a mistake in the pack's own SQL is invalid, not refused
        let typo = read(&db, &pack, "SELECT nope FROM mine").await;
        assert!(matches!(typo, Err(StorageError::Invalid(_))), "{typo:?}");
        let typo = db.execute(&pack, "UPDATE mine SET nope = 1", &[]).await;
        assert!(matches!(typo, Err(StorageError::Invalid(_))), "{typo:?}");
        // the SQL ends with a comment and a semicolon: still one statement
        read(&db, &pack, "SELECT id FROM mine; -- done")
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn foreign_tables_catalogs_and_side_doors_are_refused_on_every_path() {
        let (dir, db, pack) = db().await;
        let attach = format!(
            "ATTACH DATABASE '{}' AS evil",
            dir.path().join("evil.db").display()
        );
        let hostile = [
            "SELECT name, secret FROM theirs",
            "SELECT id, note FROM mine /* /* */ UNION SELECT name, secret FROM theirs -- */",
            "WITH theirs AS (SELECT * FROM theirs) SELECT secret FROM theirs",
            "WITH mine AS (SELECT secret AS id FROM theirs) SELECT id FROM mine",
            "SELECT id FROM mine WHERE id IN (SELECT name FROM theirs)",
            "SELECT \"secret\" FROM \"main\".\"theirs\"",
            "SELECT name FROM sqlite_master",
            "SELECT * FROM pragma_table_info('theirs')",
            "SELECT sqlite_version()",
            "SELECT load_extension('x')",
            "PRAGMA table_info(theirs)",
            "SELECT id FROM mine; SELECT secret FROM theirs",
            "SELECT id FROM mine /* x */ ; DELETE FROM theirs",
            &attach,
            "DROP TABLE theirs",
            "BEGIN",
            "CREATE TABLE t2 (x)",
        ];
        for sql in hostile {
            for access in [Access::Read, Access::Write] {
                let got = db.query(&pack, sql, &[], access).await;
                assert!(
                    matches!(got, Err(StorageError::Denied(_) | StorageError::Invalid(_))),
                    "{sql} ({access:?}): {got:?}"
                );
            }
            let got = db.execute(&pack, sql, &[]).await;
            assert!(got.is_err(), "{sql}: {got:?}");
            let batch = [Statement {
                sql: sql.to_string(),
                params: vec![],
            }];
            assert!(db.batch(&pack, &batch).await.is_err(), "{sql} in a batch");
        }
        let writes = [
            "INSERT INTO mine SELECT name, secret FROM theirs",
            "UPDATE mine SET note = (SELECT secret FROM theirs)",
            "UPDATE mine SET note = 'x' /* /* */ ; DELETE FROM theirs; -- */",
            "DELETE FROM theirs",
        ];
        for sql in writes {
            assert!(
                matches!(
                    db.execute(&pack, sql, &[]).await,
                    Err(StorageError::Denied(_))
                ),
                "{sql}"
            );
        }
        let host = Caller::host();
        let left = read(&db, &host, "SELECT secret FROM theirs").await.unwrap();
        assert_eq!(
            left.rows,
            vec![vec![SqlValue::Text(Some("the-secret".into()))]]
        );
        let mine = read(&db, &host, "SELECT note FROM mine").await.unwrap();
        assert_eq!(mine.rows, vec![vec![SqlValue::Text(Some("mine".into()))]]);
        assert!(
            !dir.path().join("evil.db").exists(),
            "ATTACH created a file"
        );
    }

    #[tokio::test]
    async fn one_packs_cached_statement_is_not_anothers() {
        let (_dir, db, pack) = db().await;
        let sql = "SELECT secret FROM theirs";
        read(&db, &Caller::host(), sql).await.unwrap();
        assert!(matches!(
            read(&db, &pack, sql).await,
            Err(StorageError::Denied(_))
        ));
        let owner = Caller::pack(
            Arc::new(PackTables::new("owner", ["theirs".to_string()])),
            Instant::now() + Duration::from_secs(60),
        );
        read(&db, &owner, sql).await.unwrap();
        assert!(matches!(
            read(&db, &pack, sql).await,
            Err(StorageError::Denied(_))
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_runaway_statement_stops_at_its_deadline_on_the_lanes_and_the_writer() {
        let (_dir, db, pack) = db().await;
        let runaway = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c";
        let tables = Arc::clone(pack.pack.as_ref().unwrap());
        for access in [Access::Read, Access::Write] {
            let caller = Caller::pack(
                Arc::clone(&tables),
                Instant::now() + Duration::from_millis(200),
            );
            let started = Instant::now();
            let got = db.query(&caller, runaway, &[], access).await;
            assert!(
                matches!(got, Err(StorageError::Deadline)),
                "{access:?}: {got:?}"
            );
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "{access:?}: {:?}",
                started.elapsed()
            );
        }
        // the writer and the readers serve on
        db.execute(&pack, "UPDATE mine SET note = 'after'", &[])
            .await
            .unwrap();
        read(&db, &pack, "SELECT note FROM mine").await.unwrap();
    }
}
