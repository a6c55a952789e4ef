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
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                Self::Unavailable(err.to_string())
            }
            sqlx::Error::ColumnDecode { .. }
            | sqlx::Error::Decode(_)
            | sqlx::Error::TypeNotFound { .. } => Self::Invalid(err.to_string()),
            other => Self::Internal(other.to_string()),
        }
    }
}

const SQLITE_AUTH: i32 = 23;
const SQLITE_INTERRUPT: i32 = 9;

/// The primary result code of a SQLite error (sqlx reports the extended code as text).
fn sqlite_code(db: &dyn sqlx::error::DatabaseError) -> Option<i32> {
    db.try_downcast_ref::<sqlx::sqlite::SqliteError>()?;
    db.code()?.parse::<i32>().ok().map(|c| c & 0xff)
}
