//! Storage errors, sorted by what a caller can do about them.

/// A storage failure. `Display` is safe for logs; the guest gets only the category and a
/// generic message for internal errors.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A uniqueness, foreign-key or check constraint refused the write.
    #[error("constraint violated: {0}")]
    Conflict(String),
    /// The table sandbox refused the statement (a foreign table, a forbidden function or
    /// statement kind, more than one statement).
    #[error("refused by the table sandbox: {0}")]
    Denied(String),
    /// The statement ran past its caller's deadline and was stopped.
    #[error("the statement ran past the call's deadline and was stopped")]
    Deadline,
    /// The statement or its parameters are wrong.
    #[error("invalid statement: {0}")]
    Invalid(String),
    /// The database cannot be reached now (pool timeout, connection lost).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Internal(String),
}

use super::sqlite_sandbox::Refusal;

impl From<sqlx::Error> for StorageError {
    fn from(err: sqlx::Error) -> Self {
        use sqlx::error::ErrorKind;
        match err {
            sqlx::Error::Configuration(source) if source.is::<Refusal>() => {
                match source.downcast_ref::<Refusal>() {
                    Some(Refusal::Prepare(m)) => Self::Invalid(m.clone()),
                    _ => Self::Denied(source.to_string()),
                }
            }
            sqlx::Error::Database(db) if sqlite_code(&*db) == Some(SQLITE_AUTH) => {
                Self::Denied(db.message().to_string())
            }
            sqlx::Error::Database(db) if sqlite_code(&*db) == Some(SQLITE_INTERRUPT) => {
                Self::Deadline
            }
            // PostgreSQL: insufficient_privilege, and query_canceled (statement_timeout or
            // the host's cancel at the deadline)
            sqlx::Error::Database(db) if db.code().as_deref() == Some("42501") => {
                Self::Denied(db.message().to_string())
            }
            sqlx::Error::Database(db) if db.code().as_deref() == Some("57014") => Self::Deadline,
            sqlx::Error::Database(db) if pg_unavailable(db.code().as_deref()) => {
                Self::Unavailable(db.message().to_string())
            }
            sqlx::Error::Database(db)
                if matches!(sqlite_code(&*db), Some(SQLITE_BUSY | SQLITE_LOCKED)) =>
            {
                Self::Unavailable(db.message().to_string())
            }
            sqlx::Error::Database(db) => match db.kind() {
                ErrorKind::UniqueViolation | ErrorKind::ForeignKeyViolation => {
                    Self::Conflict(db.message().to_string())
                }
                ErrorKind::NotNullViolation | ErrorKind::CheckViolation => {
                    Self::Invalid(db.message().to_string())
                }
                _ => {
                    let message = db.message().to_string();
                    // SQLite reports a busy database as an error, not a timeout.
                    if message.contains("database is locked") {
                        Self::Unavailable(message)
                    } else {
                        Self::Invalid(message)
                    }
                }
            },
            // the server went away (a restart, a network fault): the pool reconnects
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::BeginFailed => Self::Unavailable(err.to_string()),
            sqlx::Error::ColumnDecode { .. }
            | sqlx::Error::Decode(_)
            | sqlx::Error::TypeNotFound { .. } => Self::Invalid(err.to_string()),
            other => Self::Internal(other.to_string()),
        }
    }
}

/// PostgreSQL SQLSTATEs of a server that cannot serve now, not of a wrong statement:
/// connection exceptions (class 08), insufficient resources (53: too many connections, out
/// of memory or disk), operator intervention other than a cancel (57P01 admin shutdown,
/// 57P02 crash shutdown, 57P03 cannot connect now, 57P05 idle session timeout), system
/// errors (58) and a serialization failure or deadlock (40001, 40P01: try again).
fn pg_unavailable(code: Option<&str>) -> bool {
    let Some(code) = code else { return false };
    code.starts_with("08")
        || code.starts_with("53")
        || code.starts_with("58")
        || matches!(
            code,
            "57P01" | "57P02" | "57P03" | "57P05" | "40001" | "40P01"
        )
}

const SQLITE_BUSY: i32 = 5;
const SQLITE_LOCKED: i32 = 6;
const SQLITE_AUTH: i32 = 23;
const SQLITE_INTERRUPT: i32 = 9;

/// The primary result code of a SQLite error (sqlx reports the extended code as text).
fn sqlite_code(db: &dyn sqlx::error::DatabaseError) -> Option<i32> {
    db.try_downcast_ref::<sqlx::sqlite::SqliteError>()?;
    db.code()?.parse::<i32>().ok().map(|c| c & 0xff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_that_cannot_serve_now_is_unavailable_not_a_bad_statement() {
        for code in [
            "08006", "08001", "57P01", "57P03", "53300", "40001", "40P01",
        ] {
            assert!(pg_unavailable(Some(code)), "{code}");
        }
        for code in ["42601", "23505", "57014", "22P02"] {
            assert!(!pg_unavailable(Some(code)), "{code}");
        }
        assert!(!pg_unavailable(None));
        let lost = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(matches!(
            StorageError::from(lost),
            StorageError::Unavailable(_)
        ));
        let crashed = StorageError::from(sqlx::Error::WorkerCrashed);
        assert!(matches!(crashed, StorageError::Unavailable(_)));
    }
}
