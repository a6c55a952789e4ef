//! The table sandbox on PostgreSQL, enforced by PostgreSQL itself: each pack's statements run
//! on connections logged in as a role of the pack's own, which holds privileges on the pack's
//! tables (and their sequences) and nothing else. The host's own connection owns the schema,
//! runs the migrations and creates the roles.
//!
//! - **Logins, not `SET ROLE`.** Any role may call `set_config('role', …)`, checked against
//!   the session user: a pack would switch straight back to a privileged session user.
//! - **Passwords** are random, kept in the host-only table `valhalla_pack_roles`, so every
//!   replica of one database logs in alike; role names carry a hash of the database name, so
//!   two databases of one cluster do not share roles.
//! - **Session state** does not outlive a call: a connection going back to the pool is rolled
//!   back and reset (`RESET ALL`, temporary tables, advisory locks, listeners, cursors).
//! - **Deadlines**: `statement_timeout` is the pack's call deadline from session start (what
//!   `RESET ALL` returns to); a pack that changed it is stopped by the host anyway: a call that
//!   gives up on a statement has the pack's statements older than the deadline cancelled.

use std::time::Duration;

use sha2::{Digest, Sha256};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Executor, PgPool, Row};

use std::sync::Arc;

use super::StorageError;
use super::caller::{Caller, PackPool, PackTables};

/// Why the pack roles could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum RoleError {
    #[error(
        "the database user `{user}` cannot create the pack roles that sandbox each pack's SQL: \
         grant it with `ALTER ROLE \"{user}\" CREATEROLE;` (run as a superuser), or set \
         `database.pack_roles = false` in config.toml to run without them (the table sandbox \
         on PostgreSQL is then only the host's SQL check)"
    )]
    NotPermitted { user: String },
    #[error("pack name `{0}` cannot name a database role")]
    BadName(String),
    #[error("setting up the role of pack `{pack}`: {source}")]
    Database {
        pack: String,
        #[source]
        source: StorageError,
    },
}

/// One pack to set up: its tables and its call deadline.
pub struct PackRoles<'a> {
    pub tables: &'a Arc<PackTables>,
    pub deadline: Duration,
}

/// What a connection going back to a pack's pool runs: nothing of one call survives into
/// the next. (`DISCARD ALL` would also drop the prepared statements sqlx caches.)
const RESET: &str = "ROLLBACK; CLOSE ALL; RESET ALL; UNLISTEN *; \
                     SELECT pg_advisory_unlock_all(); DISCARD TEMP; DISCARD SEQUENCES";

const ROLES_TABLE: &str = "valhalla_pack_roles";

impl PackRoles<'_> {
    /// Create (or bring up to date) every pack's role and grants on the host's connection,
    /// then give each pack its pool of at most `max_connections`, connecting on first use.
    pub async fn ensure(
        host: &PgPool,
        url: &str,
        packs: &[PackRoles<'_>],
        max_connections: u32,
    ) -> Result<(), RoleError> {
        let db_err = |pack: &str| {
            let pack = pack.to_string();
            move |e: sqlx::Error| RoleError::Database {
                pack: pack.clone(),
                source: e.into(),
            }
        };
        let row = sqlx::query(
            "SELECT current_user::text AS me, current_database()::text AS db, \
             current_schema()::text AS schema, \
             (SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user) AS may",
        )
        .fetch_one(host)
        .await
        .map_err(db_err("*"))?;
        let (me, db, schema): (String, String, String) =
            (row.get("me"), row.get("db"), row.get("schema"));
        if !row.get::<Option<bool>, _>("may").unwrap_or(false) {
            return Err(RoleError::NotPermitted { user: me });
        }
        host.execute(
            format!(
                "CREATE TABLE IF NOT EXISTS {ROLES_TABLE} (pack TEXT PRIMARY KEY, \
                 role TEXT NOT NULL, password TEXT NOT NULL)"
            )
            .as_str(),
        )
        .await
        .map_err(db_err("*"))?;
        let base: PgConnectOptions = url.parse().map_err(db_err("*"))?;
        for pack in packs {
            let name = &pack.tables.pack;
            let role = role_name(&db, name)?;
            let password = password_of(host, name, &role).await.map_err(db_err(name))?;
            grant(host, &me, &schema, &role, &password, pack.tables)
                .await
                .map_err(db_err(name))?;
            let deadline_ms = pack.deadline.as_millis().to_string();
            let options = base
                .clone()
                .username(&role)
                .password(&password)
                .application_name(&format!("valhalla:{name}"))
                .options([
                    ("statement_timeout", deadline_ms.as_str()),
                    ("idle_in_transaction_session_timeout", deadline_ms.as_str()),
                    // the reset's ROLLBACK outside a transaction only warns
                    ("client_min_messages", "error"),
                ]);
            let pool = PgPoolOptions::new()
                .max_connections(max_connections)
                .min_connections(0)
                .idle_timeout(Duration::from_secs(60))
                // as long as the host's pool waits (`database.acquire_timeout_ms`)
                .acquire_timeout(host.options().get_acquire_timeout())
                .after_release(|conn, _| {
                    Box::pin(async move { conn.execute(RESET).await.map(|_| true) })
                })
                .connect_lazy_with(options);
            let _ = pack.tables.pg.set(PackPool {
                pool,
                role,
                deadline: pack.deadline,
            });
        }
        Ok(())
    }
}

/// `vh_<hash of the database name>_<pack>`: unique per database of a cluster, at most 63
/// bytes (PostgreSQL's limit).
fn role_name(database: &str, pack: &str) -> Result<String, RoleError> {
    if pack.is_empty()
        || !pack
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(RoleError::BadName(pack.to_string()));
    }
    let hash = hex::encode(&Sha256::digest(database.as_bytes())[..4]);
    let mut role = format!("vh_{hash}_{pack}");
    role.truncate(63);
    Ok(role)
}

/// The pack's stored password, made (32 random bytes, hex) on first use.
async fn password_of(host: &PgPool, pack: &str, role: &str) -> Result<String, sqlx::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
    sqlx::query(&format!(
        "INSERT INTO {ROLES_TABLE} (pack, role, password) VALUES ($1, $2, $3) \
         ON CONFLICT (pack) DO NOTHING"
    ))
    .bind(pack)
    .bind(role)
    .bind(hex::encode(bytes))
    .execute(host)
    .await?;
    let row = sqlx::query(&format!(
        "SELECT password FROM {ROLES_TABLE} WHERE pack = $1"
    ))
    .bind(pack)
    .fetch_one(host)
    .await?;
    row.try_get("password")
}

fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The role, able to log in and to touch the pack's tables and their sequences, nothing else;
/// the host a member of it (so that it may cancel the role's statements).
async fn grant(
    host: &PgPool,
    me: &str,
    schema: &str,
    role: &str,
    password: &str,
    tables: &PackTables,
) -> Result<(), sqlx::Error> {
    let (r, s) = (ident(role), ident(schema));
    // Roles are cluster-wide: two replicas starting at once may both try to create it.
    let mut tx = host.begin().await?;
    tx.execute("SELECT pg_advisory_xact_lock(7307186521)")
        .await?;
    let exists = sqlx::query("SELECT 1 FROM pg_roles WHERE rolname = $1")
        .bind(role)
        .fetch_optional(&mut *tx)
        .await?
        .is_some();
    let verb = if exists { "ALTER" } else { "CREATE" };
    // `password` is hex: nothing to escape.
    tx.execute(
        format!(
            "{verb} ROLE {r} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION \
             NOBYPASSRLS NOINHERIT PASSWORD '{password}'"
        )
        .as_str(),
    )
    .await?;
    if !exists {
        tx.execute(format!("GRANT {r} TO {}", ident(me)).as_str())
            .await?;
    }
    tx.execute(format!("REVOKE ALL ON ALL TABLES IN SCHEMA {s} FROM {r}").as_str())
        .await?;
    tx.execute(format!("REVOKE ALL ON ALL SEQUENCES IN SCHEMA {s} FROM {r}").as_str())
        .await?;
    tx.execute(format!("GRANT USAGE ON SCHEMA {s} TO {r}").as_str())
        .await?;
    let owned: Vec<&str> = tables.tables().collect();
    let present: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND c.relname = ANY($2)",
    )
    .bind(schema)
    .bind(&owned)
    .fetch_all(&mut *tx)
    .await?;
    for table in &present {
        tx.execute(
            format!(
                "GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE {s}.{} TO {r}",
                ident(table)
            )
            .as_str(),
        )
        .await?;
    }
    let sequences: Vec<String> = sqlx::query_scalar(
        "SELECT seq.relname::text FROM pg_class seq \
         JOIN pg_depend d ON d.objid = seq.oid AND d.classid = 'pg_class'::regclass \
         JOIN pg_class t ON t.oid = d.refobjid JOIN pg_namespace n ON n.oid = t.relnamespace \
         WHERE seq.relkind = 'S' AND n.nspname = $1 AND t.relname = ANY($2)",
    )
    .bind(schema)
    .bind(&present)
    .fetch_all(&mut *tx)
    .await?;
    for seq in &sequences {
        tx.execute(
            format!(
                "GRANT USAGE, SELECT, UPDATE ON SEQUENCE {s}.{} TO {r}",
                ident(seq)
            )
            .as_str(),
        )
        .await?;
    }
    tx.commit().await
}

/// The pool `caller`'s statements run on: the pack's own, or the host's.
pub fn pool_for<'a>(host: &'a PgPool, caller: &'a Caller) -> &'a PgPool {
    caller
        .pack
        .as_ref()
        .and_then(|p| p.pg.get())
        .map_or(host, |p| &p.pool)
}

/// Run `work` for `caller`; if it is given up before it ends (the call's deadline, a client
/// gone), the pack's statements that then outlive the pack's deadline are cancelled.
pub async fn watched<T>(
    host: &PgPool,
    caller: &Caller,
    work: impl Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, sqlx::Error> {
    let watch = caller
        .pack
        .as_ref()
        .and_then(|p| p.pg.get())
        .map(|p| Watch {
            host: host.clone(),
            pool: p.clone(),
            started: tokio::time::Instant::now(),
            done: false,
        });
    let result = work.await;
    if let Some(mut w) = watch {
        w.done = true;
    }
    result
}

struct Watch {
    host: PgPool,
    pool: PackPool,
    started: tokio::time::Instant,
    done: bool,
}

impl Drop for Watch {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let (host, pool, at) = (
            self.host.clone(),
            self.pool.clone(),
            self.started + self.pool.deadline + Duration::from_millis(20),
        );
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            tokio::time::sleep_until(at).await;
            let cancelled = sqlx::query(
                "SELECT count(pg_cancel_backend(pid)) FROM pg_stat_activity \
                 WHERE usename = $1 AND datname = current_database() AND state = 'active' \
                 AND now() - query_start >= $2 * interval '1 millisecond'",
            )
            .bind(&pool.role)
            .bind(i64::try_from(pool.deadline.as_millis()).unwrap_or(i64::MAX))
            .fetch_one(&host)
            .await;
            match cancelled.and_then(|r| r.try_get::<i64, _>(0)) {
                Ok(0) => {}
                Ok(n) => tracing::warn!(role = %pool.role, statements = n, "cancelled statements past the pack's deadline"),
                Err(e) => tracing::warn!(role = %pool.role, error = %e, "cannot cancel statements past the pack's deadline"),
            }
        });
    }
}
