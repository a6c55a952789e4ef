//! The way from the `log` capability to the system_log pack's `system_logs` table: records go
//! through a bounded channel to one writer task that inserts them in batches, so the request
//! path never waits on the database for a log line. A flush at shutdown writes what is queued.
//! An audit event is written at once instead ([`LogSink::write_now`]): the answer to the
//! request that made the change waits for it, so an acknowledged change has its audit record.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::storage::{Db, SqlValue, Statement};

/// Records waiting at most; past this, new ones are dropped (and counted) rather than block.
const QUEUE: usize = 10_000;
/// Rows per insert transaction.
const BATCH: usize = 200;
/// How long a record may wait for companions before it is written.
const LINGER: Duration = Duration::from_millis(100);

/// Rows per INSERT statement: a batch is a few multi-row statements, not a statement per row
/// (each statement is a round trip to the database's thread while writers wait).
const ROWS_PER_INSERT: usize = 50;
/// Columns of a row.
const COLUMNS: usize = 9;

/// `INSERT` of `rows` rows into the table the system_log pack's migrations create; the host
/// writes pack logs into it.
fn insert_sql(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO system_logs \
         (id, logged_at, level, category, message, correlation_id, user_id, source, context) \
         VALUES ",
    );
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 0..COLUMNS {
            if c > 0 {
                sql.push_str(", ");
            }
            sql.push('$');
            sql.push_str(&(r * COLUMNS + c + 1).to_string());
        }
        sql.push(')');
    }
    sql
}

/// Now, as every pack writes timestamps (RFC 3339 with microseconds: one width, so text order
/// is time order).
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// One row of `system_logs`.
#[derive(Debug, Clone)]
pub struct LogRecord {
    /// when it happened (not when the batch is written), RFC 3339 UTC
    pub at: String,
    pub level: &'static str,
    pub category: String,
    pub message: String,
    pub correlation_id: Option<String>,
    pub user_id: Option<String>,
    pub source: String,
    /// JSON object
    pub context: String,
}

enum Message {
    Record(LogRecord),
    Flush(oneshot::Sender<()>),
}

/// The sending side, shared by every store.
pub struct LogSink {
    tx: mpsc::Sender<Message>,
    dropped: AtomicU64,
    db: Db,
}

impl LogSink {
    /// Start the writer task on `db`.
    pub fn start(db: Db) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(writer(db.clone(), rx));
        Self {
            tx,
            dropped: AtomicU64::new(0),
            db,
        }
    }

    /// Queue a record; never waits.
    pub fn push(&self, record: LogRecord) {
        if self.tx.try_send(Message::Record(record)).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(dropped = n, "system log queue full: records dropped");
            }
        }
    }

    /// Write `record` now, answering once it is in the database; when the database refuses
    /// it, it is queued for the batch writer (and the failure logged).
    pub async fn write_now(&self, record: LogRecord) {
        let statement = statements(std::slice::from_ref(&record));
        if let Err(e) = self
            .db
            .batch(&crate::storage::Caller::host(), &statement)
            .await
        {
            tracing::error!(error = %e, "cannot write an audit event now; queued");
            self.push(record);
        }
    }

    /// Write everything queued so far; answers when it is in the database.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Message::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

async fn writer(db: Db, mut rx: mpsc::Receiver<Message>) {
    let mut batch: Vec<LogRecord> = Vec::with_capacity(BATCH);
    loop {
        let first = match rx.recv().await {
            Some(m) => m,
            None => break,
        };
        let mut flushes = Vec::new();
        let take = |m: Message,
                    batch: &mut Vec<LogRecord>,
                    flushes: &mut Vec<oneshot::Sender<()>>| match m {
            Message::Record(r) => batch.push(r),
            Message::Flush(done) => flushes.push(done),
        };
        take(first, &mut batch, &mut flushes);
        let deadline = tokio::time::Instant::now() + LINGER;
        while batch.len() < BATCH && flushes.is_empty() {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(m)) => take(m, &mut batch, &mut flushes),
                Ok(None) | Err(_) => break,
            }
        }
        // Drain what is already queued (without waiting) before answering a flush.
        while !flushes.is_empty() {
            match rx.try_recv() {
                Ok(m) => take(m, &mut batch, &mut flushes),
                Err(_) => break,
            }
        }
        for chunk in batch.chunks(BATCH) {
            write(&db, chunk).await;
        }
        batch.clear();
        for done in flushes {
            let _ = done.send(());
        }
    }
}

/// The multi-row INSERTs of `records`.
fn statements(records: &[LogRecord]) -> Vec<Statement> {
    let text = |s: &str| SqlValue::Text(Some(s.to_string()));
    records
        .chunks(ROWS_PER_INSERT)
        .map(|chunk| Statement {
            sql: insert_sql(chunk.len()),
            params: chunk
                .iter()
                .flat_map(|r| {
                    [
                        text(&uuid::Uuid::now_v7().to_string()),
                        text(&r.at),
                        text(r.level),
                        text(&r.category),
                        text(&r.message),
                        SqlValue::Text(r.correlation_id.clone()),
                        SqlValue::Text(r.user_id.clone()),
                        text(&r.source),
                        text(&r.context),
                    ]
                })
                .collect(),
        })
        .collect()
}

async fn write(db: &Db, records: &[LogRecord]) {
    if let Err(e) = db
        .batch(&crate::storage::Caller::host(), &statements(records))
        .await
    {
        tracing::error!(error = %e, records = records.len(), "cannot write to system_logs");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_row_inserts_number_every_parameter() {
        let sql = insert_sql(2);
        assert!(sql.ends_with(
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9), \
             ($10, $11, $12, $13, $14, $15, $16, $17, $18)"
        ));
    }
}
