//! Per-pack migrations: `migrations/<pack>/NNNN_name.sql`, applied in order at startup, each in
//! its own transaction, recorded with a checksum in `valhalla_migrations`. An applied migration
//! that was edited or removed stops startup.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use sqlx::Executor;

use super::sqlite_lanes::JobError;
use super::{Access, Caller, Db, SqlValue, StorageError};

/// The host's own bookkeeping table.
pub const TABLE: &str = "valhalla_migrations";

/// One migration file.
#[derive(Debug, Clone)]
pub struct Migration {
    pub version: i64,
    pub name: String,
    pub path: PathBuf,
    pub sql: String,
    pub checksum: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error("{path}: cannot read: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: a migration file is named NNNN_name.sql (digits, `_`, lower-case name)")]
    BadName { path: PathBuf },
    #[error("{path}: version {version} is used twice")]
    Duplicate { path: PathBuf, version: i64 },
    #[error(
        "pack `{pack}`: migration {version} ({name}) was edited after it was applied \
         (checksum {applied} in the database, {found} on disk); add a new migration instead"
    )]
    Edited {
        pack: String,
        version: i64,
        name: String,
        applied: String,
        found: String,
    },
    #[error(
        "pack `{pack}`: applied migration {version} ({name}) is missing from {dir}: the database \
         was migrated by a newer release than this one (or the file was removed); run that release"
    )]
    Missing {
        pack: String,
        version: i64,
        name: String,
        dir: PathBuf,
    },
    #[error("pack `{pack}`: migration {version} is older than the newest applied one ({newest})")]
    OutOfOrder {
        pack: String,
        version: i64,
        newest: i64,
    },
    #[error("{path}: failed: {source}")]
    Failed { path: PathBuf, source: StorageError },
    #[error("migration bookkeeping: {0}")]
    Storage(#[from] StorageError),
}

/// The migrations of `pack` under `dir`, sorted by version. No folder means none.
pub fn discover(dir: &Path, pack: &str) -> Result<Vec<Migration>, MigrationError> {
    let folder = dir.join(pack);
    if !folder.is_dir() {
        return Ok(Vec::new());
    }
    let io = |source| MigrationError::Io {
        path: folder.clone(),
        source,
    };
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&folder).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.extension().is_none_or(|e| e != "sql") {
            continue;
        }
        let (version, name) =
            parse_file_name(&path).ok_or_else(|| MigrationError::BadName { path: path.clone() })?;
        let sql = std::fs::read_to_string(&path).map_err(|source| MigrationError::Io {
            path: path.clone(),
            source,
        })?;
        let checksum = hex::encode(Sha256::digest(sql.as_bytes()));
        found.push(Migration {
            version,
            name,
            path,
            sql,
            checksum,
        });
    }
    found.sort_by_key(|m| m.version);
    for pair in found.windows(2) {
        if pair[0].version == pair[1].version {
            return Err(MigrationError::Duplicate {
                path: pair[1].path.clone(),
                version: pair[1].version,
            });
        }
    }
    Ok(found)
}

fn parse_file_name(path: &Path) -> Option<(i64, String)> {
    let stem = path.file_stem()?.to_str()?;
    let (digits, name) = stem.split_once('_')?;
    let valid_name = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) || !valid_name {
        return None;
    }
    Some((digits.parse().ok()?, name.to_string()))
}

/// Create the bookkeeping table if needed.
pub async fn ensure_table(db: &Db) -> Result<(), MigrationError> {
    let sql = format!(
        "CREATE TABLE IF NOT EXISTS {TABLE} (pack TEXT NOT NULL, version BIGINT NOT NULL, \
         name TEXT NOT NULL, checksum TEXT NOT NULL, applied_at TEXT NOT NULL, \
         PRIMARY KEY (pack, version))"
    );
    db.execute(&Caller::host(), &sql, &[]).await?;
    Ok(())
}

/// Apply what is new in `migrations` for `pack`, after checking that nothing applied changed.
/// Answers the versions applied now.
pub async fn apply(
    db: &Db,
    pack: &str,
    dir: &Path,
    migrations: &[Migration],
) -> Result<Vec<i64>, MigrationError> {
    let applied = db
        .query(
            &Caller::host(),
            &format!(
                "SELECT version, name, checksum FROM {TABLE} WHERE pack = $1 ORDER BY version"
            ),
            &[SqlValue::Text(Some(pack.to_string()))],
            Access::Write,
        )
        .await?;
    let mut seen = BTreeSet::new();
    let mut newest = i64::MIN;
    for row in applied.rows {
        let (
            SqlValue::Int(Some(version)),
            SqlValue::Text(Some(name)),
            SqlValue::Text(Some(checksum)),
        ) = (&row[0], &row[1], &row[2])
        else {
            return Err(StorageError::Internal(format!("malformed row in {TABLE}")).into());
        };
        newest = newest.max(*version);
        seen.insert(*version);
        match migrations.iter().find(|m| m.version == *version) {
            None => {
                return Err(MigrationError::Missing {
                    pack: pack.into(),
                    version: *version,
                    name: name.clone(),
                    dir: dir.join(pack),
                });
            }
            Some(m) if m.checksum != *checksum => {
                return Err(MigrationError::Edited {
                    pack: pack.into(),
                    version: *version,
                    name: name.clone(),
                    applied: checksum.chars().take(12).collect(),
                    found: m.checksum.chars().take(12).collect(),
                });
            }
            Some(_) => {}
        }
    }
    let mut done = Vec::new();
    for m in migrations.iter().filter(|m| !seen.contains(&m.version)) {
        if m.version < newest {
            return Err(MigrationError::OutOfOrder {
                pack: pack.into(),
                version: m.version,
                newest,
            });
        }
        apply_one(db, pack, m)
            .await
            .map_err(|source| MigrationError::Failed {
                path: m.path.clone(),
                source,
            })?;
        tracing::info!(pack, version = m.version, name = %m.name, "applied migration");
        done.push(m.version);
    }
    Ok(done)
}

async fn apply_one(db: &Db, pack: &str, m: &Migration) -> Result<(), StorageError> {
    let record = format!(
        "INSERT INTO {TABLE} (pack, version, name, checksum, applied_at) VALUES ($1, $2, $3, $4, $5)"
    );
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    // The script and its record in one transaction; evaluates to the failure and whether
    // the transaction may still be open (its ROLLBACK failed too).
    macro_rules! run {
        ($conn:expr, $begin:expr, $script:expr, $pack:expr, $m:expr) => {{
            match $conn.execute($begin).await {
                Err(e) => Err((e, false)),
                Ok(_) => {
                    let result = async {
                        $conn.execute(sqlx::raw_sql($script)).await?;
                        sqlx::query(&record)
                            .bind($pack)
                            .bind($m.version)
                            .bind(&$m.name)
                            .bind(&$m.checksum)
                            .bind(&now)
                            .execute(&mut *$conn)
                            .await?;
                        $conn.execute("COMMIT").await.map(drop)
                    }
                    .await;
                    match result {
                        Ok(()) => Ok(()),
                        Err(e) => Err((e, $conn.execute("ROLLBACK").await.is_err())),
                    }
                }
            }
        }};
    }
    match db {
        Db::Sqlite(lanes) => {
            let (pack, m) = (pack.to_string(), m.clone());
            lanes
                .write(&Caller::host(), move |g| {
                    Box::pin(async move {
                        let conn = &mut g.conn;
                        run!(conn, "BEGIN IMMEDIATE", &m.sql, &pack, m)
                            .map_err(|(error, poisoned)| JobError { error, poisoned })
                    })
                })
                .await
        }
        Db::Postgres(pool) => {
            let mut conn = pool.acquire().await?;
            run!(conn, "BEGIN", &m.sql, pack, m).map_err(|(e, _)| e.into())
        }
    }
}

/// Serialise migration runs across replicas (PostgreSQL advisory lock); a no-op on SQLite,
/// where one process owns the file. The lock goes with the returned connection.
pub async fn lock(
    db: &Db,
) -> Result<Option<sqlx::pool::PoolConnection<sqlx::Postgres>>, StorageError> {
    match db {
        Db::Sqlite(_) => Ok(None),
        Db::Postgres(pool) => {
            let mut conn = pool.acquire().await?;
            sqlx::query("SELECT pg_advisory_lock(7307186520)")
                .execute(&mut *conn)
                .await?;
            Ok(Some(conn))
        }
    }
}

/// Release the lock taken by [`lock`].
pub async fn unlock(conn: Option<sqlx::pool::PoolConnection<sqlx::Postgres>>) {
    if let Some(mut conn) = conn {
        let _ = sqlx::query("SELECT pg_advisory_unlock(7307186520)")
            .execute(&mut *conn)
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names() {
        assert_eq!(
            parse_file_name(Path::new("0001_init.sql")),
            Some((1, "init".into()))
        );
        assert_eq!(
            parse_file_name(Path::new("0012_add_x2.sql")),
            Some((12, "add_x2".into()))
        );
        assert_eq!(parse_file_name(Path::new("init.sql")), None);
        assert_eq!(parse_file_name(Path::new("0001_Bad.sql")), None);
        assert_eq!(parse_file_name(Path::new("x001_a.sql")), None);
    }
}
