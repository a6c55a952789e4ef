//! One tick per interval across replicas (PostgreSQL): before a pack's tick, a replica takes
//! the pack's lease row in `valhalla_tick_leases` — its own, or one whose holder let it lapse —
//! for two intervals (the database's clock, not the replicas'), and a session advisory lock on
//! the pack for the tick itself. The holder renews at every tick, so the others skip; when it
//! dies, its lock goes with its connection and its lease lapses, and another replica takes over
//! within two intervals. The lock keeps a tick that outlives its lease from overlapping its
//! successor's. SQLite serves one process: no lease.

use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::{PgPool, Postgres, Row};

/// The host's table of tick leases.
pub const TABLE: &str = "valhalla_tick_leases";

/// Takes and renews this replica's tick leases.
#[derive(Clone)]
pub struct TickLeases {
    pool: PgPool,
    holder: String,
}

/// A lease held for one tick: the advisory lock's connection.
pub struct Held {
    conn: PoolConnection<Postgres>,
    pack: String,
}

/// Create the leases table (at startup, under the migrations' lock).
pub async fn ensure_table(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "CREATE TABLE IF NOT EXISTS {TABLE} (pack TEXT PRIMARY KEY, holder TEXT NOT NULL, \
         expires_at TIMESTAMPTZ NOT NULL)"
    ))
    .execute(pool)
    .await
    .map(drop)
}

impl TickLeases {
    /// The leases of replica `holder` (its instance id) on `pool`.
    pub fn new(pool: PgPool, holder: &str) -> Self {
        Self {
            pool,
            holder: holder.to_string(),
        }
    }

    /// Hold `pack`'s lease for this tick, or `None` when another replica holds it (or is still
    /// running its tick).
    pub async fn try_hold(
        &self,
        pack: &str,
        interval: Duration,
    ) -> Result<Option<Held>, sqlx::Error> {
        let taken = sqlx::query(&format!(
            "INSERT INTO {TABLE} (pack, holder, expires_at) \
             VALUES ($1, $2, now() + make_interval(secs => $3)) \
             ON CONFLICT (pack) DO UPDATE SET holder = EXCLUDED.holder, \
             expires_at = EXCLUDED.expires_at \
             WHERE {TABLE}.holder = EXCLUDED.holder OR {TABLE}.expires_at < now() \
             RETURNING holder"
        ))
        .bind(pack)
        .bind(&self.holder)
        .bind(lease_seconds(interval))
        .fetch_optional(&self.pool)
        .await?;
        if taken.is_none() {
            return Ok(None);
        }
        let mut conn = self.pool.acquire().await?;
        let locked: bool = sqlx::query("SELECT pg_try_advisory_lock(hashtext($1)::bigint)")
            .bind(lock_name(pack))
            .fetch_one(&mut *conn)
            .await?
            .try_get(0)?;
        Ok(locked.then(|| Held {
            conn,
            pack: pack.to_string(),
        }))
    }
}

impl Held {
    /// The tick is over: the lease runs two intervals from now, and the lock is let go.
    pub async fn release(mut self, leases: &TickLeases, interval: Duration) {
        let renewed = sqlx::query(&format!(
            "UPDATE {TABLE} SET expires_at = now() + make_interval(secs => $3) \
             WHERE pack = $1 AND holder = $2"
        ))
        .bind(&self.pack)
        .bind(&leases.holder)
        .bind(lease_seconds(interval))
        .execute(&mut *self.conn)
        .await;
        if let Err(e) = renewed {
            tracing::warn!(pack = %self.pack, error = %e, "tick lease not renewed");
        }
        let unlocked = sqlx::query("SELECT pg_advisory_unlock(hashtext($1)::bigint)")
            .bind(lock_name(&self.pack))
            .execute(&mut *self.conn)
            .await;
        if unlocked.is_err() {
            // a connection that cannot unlock must not go back to the pool holding the lock
            let _ = self.conn.close().await;
        }
    }
}

/// A lease lasts two intervals: the holder renews it every interval, so it lapses only when
/// the holder is gone (or wedged), and another replica takes over within two intervals.
fn lease_seconds(interval: Duration) -> f64 {
    (interval * 2).as_secs_f64()
}

fn lock_name(pack: &str) -> String {
    format!("valhalla_tick:{pack}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_two_intervals() {
        assert_eq!(lease_seconds(Duration::from_millis(1500)), 3.0);
    }
}
