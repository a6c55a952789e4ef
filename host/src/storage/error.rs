//! Storage errors, sorted by what a caller can do about them.

/// A storage failure. `Display` is safe for logs; the guest gets only the category and a
/// generic message for internal errors.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A uniqueness, foreign-key or check constraint refused the write.
    #[error("constraint violated: {0}")]
    Conflict(String),
    /// The statement or its parameters are wrong.
    #[error("invalid statement: {0}")]
    Invalid(String),
    /// The database cannot be reached now (pool timeout, connection lost).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Internal(String),
}

impl From<sqlx::Error> for StorageError {
    fn from(err: sqlx::Error) -> Self {
        use sqlx::error::ErrorKind;
        match err {
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
