//! The counters behind the `counters` capability and the guard chain's counting memos, counted
//! by every replica together. On PostgreSQL each counter is a row of the host's
//! `valhalla_counters` (UNLOGGED: counts are worth a WAL write less than their speed, and a
//! crash only restarts the windows) bumped with one UPSERT — the row lock makes concurrent
//! increments from any replica exact — its window on the database's clock. On SQLite the
//! process is the whole service: the shared cache's in-memory counters.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::{PgPool, Row};

use super::shared_cache::Cache;

/// The host's table of counters (PostgreSQL).
pub const TABLE: &str = "valhalla_counters";
/// Longest counter window (a year), as the in-memory counters cap it.
const MAX_WINDOW: Duration = Duration::from_secs(366 * 24 * 3600);
/// How often a replica deletes lapsed rows (each one does; the statement is idempotent).
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Why a counter could not be counted.
#[derive(Debug, thiserror::Error)]
pub enum CounterError {
    #[error("the shared counters are unreachable: {0}")]
    Database(#[from] sqlx::Error),
    #[error("the in-process counters are unavailable")]
    Local,
}

/// A counter after an increment (or a read): its value and the time until its window resets.
pub type Standing = (i64, Duration);

/// The counters every replica counts together.
pub struct SharedCounters {
    cache: Arc<Cache>,
    pg: Option<Postgres>,
}

struct Postgres {
    pool: PgPool,
    last_sweep: Mutex<Instant>,
}

/// Create the counters table (at startup, under the migrations' lock).
pub async fn ensure_table(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "CREATE UNLOGGED TABLE IF NOT EXISTS {TABLE} (key TEXT PRIMARY KEY, \
         value BIGINT NOT NULL, resets_at TIMESTAMPTZ NOT NULL)"
    ))
    .execute(pool)
    .await
    .map(drop)
}

/// One UPSERT for any number of keys (`$1` keys, `$2` the delta, `$3` windows in ms): a lapsed
/// row starts a new window, a live one adds to its count.
fn upsert_sql() -> String {
    format!(
        "INSERT INTO {TABLE} AS c (key, value, resets_at) \
         SELECT k, $2, clock_timestamp() + w * interval '1 millisecond' \
         FROM unnest($1::text[], $3::bigint[]) AS t(k, w) \
         ON CONFLICT (key) DO UPDATE SET \
         value = CASE WHEN c.resets_at <= clock_timestamp() THEN EXCLUDED.value \
                 ELSE c.value + EXCLUDED.value END, \
         resets_at = CASE WHEN c.resets_at <= clock_timestamp() THEN EXCLUDED.resets_at \
                     ELSE c.resets_at END \
         RETURNING key, value, {REMAINING_MS} AS reset_ms"
    )
}

/// Milliseconds left in a row's window, rounded up.
const REMAINING_MS: &str =
    "GREATEST(0, CEIL(EXTRACT(EPOCH FROM (resets_at - clock_timestamp())) * 1000))::bigint";

fn standing(value: i64, reset_ms: i64) -> Standing {
    (
        value,
        Duration::from_millis(u64::try_from(reset_ms).unwrap_or(0)),
    )
}

fn window_ms(window: Duration) -> i64 {
    i64::try_from(window.min(MAX_WINDOW).as_millis()).unwrap_or(i64::MAX)
}

impl SharedCounters {
    /// In-process counters (one process serves the whole service).
    pub fn local(cache: Arc<Cache>) -> Self {
        Self { cache, pg: None }
    }

    /// Counters in `pool`'s `valhalla_counters`, shared by every replica on that database.
    pub fn postgres(cache: Arc<Cache>, pool: PgPool) -> Self {
        let last_sweep = Mutex::new(Instant::now());
        Self {
            cache,
            pg: Some(Postgres { pool, last_sweep }),
        }
    }

    /// Whether the counts are shared across processes (PostgreSQL).
    pub fn shared(&self) -> bool {
        self.pg.is_some()
    }

    /// Add `delta` to the counter `key` (a window of `window` from its first increment);
    /// a `delta` of 0 reads it.
    pub async fn incr(
        &self,
        key: &str,
        delta: i64,
        window: Duration,
    ) -> Result<Standing, CounterError> {
        let Some(pg) = &self.pg else {
            return self
                .cache
                .incr(key, delta, window)
                .ok_or(CounterError::Local);
        };
        if delta == 0 {
            let sql = format!(
                "SELECT value, {REMAINING_MS} AS reset_ms FROM {TABLE} \
                 WHERE key = $1 AND resets_at > clock_timestamp()"
            );
            let row = sqlx::query(&sql).bind(key).fetch_optional(&pg.pool).await?;
            return Ok(match row {
                Some(r) => standing(r.try_get("value")?, r.try_get("reset_ms")?),
                None => (0, window.min(MAX_WINDOW)),
            });
        }
        let counted = self.add_each(pg, &[(key, window)], delta).await?;
        counted
            .into_iter()
            .next()
            .ok_or(CounterError::Database(sqlx::Error::RowNotFound))
    }

    /// Add 1 to each of `counters` (distinct keys, each with its window) at once — one round
    /// trip on PostgreSQL — answering each one's standing in the same order.
    pub async fn incr_each(
        &self,
        counters: &[(&str, Duration)],
    ) -> Result<Vec<Standing>, CounterError> {
        match &self.pg {
            None => counters
                .iter()
                .map(|(key, window)| self.cache.incr(key, 1, *window).ok_or(CounterError::Local))
                .collect(),
            Some(pg) => self.add_each(pg, counters, 1).await,
        }
    }

    async fn add_each(
        &self,
        pg: &Postgres,
        counters: &[(&str, Duration)],
        delta: i64,
    ) -> Result<Vec<Standing>, CounterError> {
        self.sweep_now_and_then(pg);
        // Rows are locked in key order, whichever request locks them: no two increments of
        // overlapping sets wait on each other crosswise. A key given twice is counted once.
        let mut sorted: Vec<(&str, i64)> =
            counters.iter().map(|(k, w)| (*k, window_ms(*w))).collect();
        sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
        sorted.dedup_by(|a, b| a.0 == b.0);
        let keys: Vec<&str> = sorted.iter().map(|(k, _)| *k).collect();
        let windows: Vec<i64> = sorted.iter().map(|(_, w)| *w).collect();
        let rows = sqlx::query(&upsert_sql())
            .bind(&keys)
            .bind(delta)
            .bind(&windows)
            .fetch_all(&pg.pool)
            .await?;
        let mut by_key = HashMap::with_capacity(rows.len());
        for row in rows {
            let key: String = row.try_get("key")?;
            by_key.insert(
                key,
                standing(row.try_get("value")?, row.try_get("reset_ms")?),
            );
        }
        counters
            .iter()
            .map(|(key, _)| {
                by_key
                    .get(*key)
                    .copied()
                    .ok_or(CounterError::Database(sqlx::Error::RowNotFound))
            })
            .collect()
    }

    /// The live counters whose keys start with `prefix`, by key, at most `limit`.
    pub async fn list(
        &self,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<(String, i64, Duration)>, CounterError> {
        let Some(pg) = &self.pg else {
            return Ok(self.cache.counters(prefix, limit));
        };
        let sql = format!(
            "SELECT key, value, {REMAINING_MS} AS reset_ms FROM {TABLE} \
             WHERE starts_with(key, $1) AND resets_at > clock_timestamp() ORDER BY key LIMIT $2"
        );
        let rows = sqlx::query(&sql)
            .bind(prefix)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&pg.pool)
            .await?;
        rows.into_iter()
            .map(|r| {
                let (value, reset) = standing(r.try_get("value")?, r.try_get("reset_ms")?);
                Ok((r.try_get("key")?, value, reset))
            })
            .collect()
    }

    /// Forget every counter whose key starts with `prefix`; how many went.
    pub async fn reset(&self, prefix: &str) -> Result<u32, CounterError> {
        let Some(pg) = &self.pg else {
            return Ok(self.cache.delete_counters(prefix));
        };
        let done = sqlx::query(&format!("DELETE FROM {TABLE} WHERE starts_with(key, $1)"))
            .bind(prefix)
            .execute(&pg.pool)
            .await?;
        Ok(u32::try_from(done.rows_affected()).unwrap_or(u32::MAX))
    }

    /// Once a minute, delete the rows whose windows lapsed a while ago (in the background).
    fn sweep_now_and_then(&self, pg: &Postgres) {
        let due = match pg.last_sweep.lock() {
            Ok(mut last) if last.elapsed() >= SWEEP_EVERY => {
                *last = Instant::now();
                true
            }
            _ => false,
        };
        if due {
            let pool = pg.pool.clone();
            tokio::spawn(async move {
                let sql = format!(
                    "DELETE FROM {TABLE} WHERE resets_at < clock_timestamp() - interval '1 minute'"
                );
                if let Err(e) = sqlx::query(&sql).execute(&pool).await {
                    tracing::warn!(error = %e, "cannot sweep lapsed counters");
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_counters_are_the_caches_own() {
        let cache = Arc::new(Cache::default());
        let counters = SharedCounters::local(Arc::clone(&cache));
        assert!(!counters.shared());
        let minute = Duration::from_secs(60);
        assert_eq!(counters.incr("p\u{1f}a", 2, minute).await.unwrap().0, 2);
        let each = counters
            .incr_each(&[("p\u{1f}a", minute), ("p\u{1f}b", minute)])
            .await
            .unwrap();
        assert_eq!((each[0].0, each[1].0), (3, 1));
        assert_eq!(cache.incr("p\u{1f}a", 0, minute).unwrap().0, 3);
        let listed = counters.list("p\u{1f}", 10).await.unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(counters.reset("p\u{1f}a").await.unwrap(), 1);
        assert_eq!(counters.incr("p\u{1f}a", 0, minute).await.unwrap().0, 0);
    }

    #[test]
    fn one_upsert_counts_every_key_and_restarts_lapsed_windows() {
        let sql = upsert_sql();
        assert!(sql.contains("unnest($1::text[], $3::bigint[])"));
        assert!(sql.contains("WHEN c.resets_at <= clock_timestamp() THEN EXCLUDED.value"));
        assert_eq!(
            window_ms(Duration::from_secs(10 * 366 * 24 * 3600)),
            31_622_400_000
        );
    }
}
