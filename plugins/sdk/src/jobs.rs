//! Leases on a pack's job rows, for work a tick claims (an outbox's deliveries, export jobs).
//! A claim is one atomic `UPDATE … RETURNING id` on SQLite and PostgreSQL alike, so two
//! claimers — two replicas, or a tick and a request — never get the same row; a claimer that
//! died (a crash, a SIGKILL) leaves its rows `running` with a lease that lapses, and the next
//! claim takes them again. The claimer is the host process: [`host::instance_id`].
//!
//! The job table has the columns `id TEXT PRIMARY KEY, status TEXT, claimed_by TEXT NULL,
//! lease_until TEXT NULL` (RFC 3339, as [`clock::rfc3339`] writes it) and, for jobs that wait
//! until a time, a due column such as `next_attempt_at TEXT NULL` (NULL: due now).
//!
//! ```ignore
//! const SPEC: jobs::Claim = jobs::Claim {
//!     table: "notification_outbox",
//!     ready: &["queued", "failed"],
//!     running: "delivering",
//!     lease_ms: 60_000,
//!     due_column: Some("next_attempt_at"),
//! };
//! for id in jobs::claim(&SPEC, 10)? {
//!     // … the work …
//!     jobs::finish(&SPEC, &id, "delivered", &[("delivered_at", now.to_value())])?;
//! }
//! ```
//!
//! On PostgreSQL under READ COMMITTED two claims may pick the same candidates in their
//! subquery; the claimable condition is repeated on the updated row itself, which PostgreSQL
//! re-checks on the row's newest version after waiting for the other claim, so the later
//! claim skips what the earlier one took.

use crate::alloc_prelude::*;

use crate::db::{self, ToValue, Value};
use crate::problem::Problem;
use crate::{clock, host};

/// How a pack's job table is claimed.
#[derive(Debug, Clone, Copy)]
pub struct Claim<'a> {
    /// the pack's own table
    pub table: &'a str,
    /// statuses that may be claimed, e.g. `["queued"]`
    pub ready: &'a [&'a str],
    /// the status while claimed, e.g. `"delivering"`
    pub running: &'a str,
    /// how long a claim holds; longer than the tick's deadline (`runtime.tick_deadline_ms`),
    /// so no live claimer outlives its lease
    pub lease_ms: u64,
    /// e.g. `Some("next_attempt_at")`: only rows due now (NULL is due)
    pub due_column: Option<&'a str>,
}

/// The longest name of a table or column (PostgreSQL's limit).
const MAX_NAME: usize = 63;

/// Claim up to `limit` rows, oldest first (ids are UUID v7): ready (and due) rows, or
/// running rows whose lease lapsed (their claimer died). Sets `status = running`,
/// `claimed_by = instance_id()` and `lease_until`; answers the ids claimed.
pub fn claim(spec: &Claim, limit: u32) -> Result<Vec<String>, Problem> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let (probe, update) = claim_sql(spec)?;
    let now_ms = clock::now_ms();
    let now = clock::rfc3339(now_ms);
    // A read first: an idle tick takes no write lock (SQLite) and writes nothing.
    if db::query(&probe, claim_params(spec, &now, 1))?.is_empty() {
        return Ok(Vec::new());
    }
    let lease_until = clock::rfc3339(lease_end(now_ms, spec.lease_ms));
    let mut params = claim_params(spec, &now, limit);
    params.extend(crate::params![host::instance_id(), lease_until]);
    db::query(&update, params)?.iter().map(|row| row.get::<String>("id")).collect()
}

/// Extend our lease on `id` by `lease_ms` from now (a long job renews between pages);
/// `false` when it is no longer ours (the lease lapsed and another claimer took it).
pub fn renew(spec: &Claim, id: &str) -> Result<bool, Problem> {
    let sql = renew_sql(spec)?;
    let lease_until = clock::rfc3339(lease_end(clock::now_ms(), spec.lease_ms));
    let params = crate::params![lease_until, id, spec.running, host::instance_id()];
    Ok(db::execute(&sql, params)? == 1)
}

/// Finish our claim on `id`: set `status` and the `set` assignments (column, value), and
/// clear `claimed_by` and `lease_until`, only where the row is still ours and running;
/// `false` when we lost it (nothing is written then).
pub fn finish(
    spec: &Claim,
    id: &str,
    status: &str,
    set: &[(&str, Value)],
) -> Result<bool, Problem> {
    let columns: Vec<&str> = set.iter().map(|(c, _)| *c).collect();
    let sql = finish_sql(spec, &columns)?;
    let mut params = crate::params![status, id, spec.running, host::instance_id()];
    params.extend(set.iter().map(|(_, v)| v.clone()));
    Ok(db::execute(&sql, params)? == 1)
}

fn lease_end(now_ms: i64, lease_ms: u64) -> i64 {
    now_ms.saturating_add(i64::try_from(lease_ms).unwrap_or(i64::MAX))
}

/// The probe's parameters: `$1` running, `$2` now, `$3` limit, `$4…` the ready statuses;
/// the claim adds the claimer and the lease's end after them.
fn claim_params(spec: &Claim, now: &str, limit: u32) -> Vec<Value> {
    let mut params = crate::params![spec.running, now, limit];
    params.extend(spec.ready.iter().map(|s| s.to_value()));
    params
}

/// The probe (is anything claimable?) and the claim itself.
fn claim_sql(spec: &Claim) -> Result<(String, String), Problem> {
    check(spec)?;
    if spec.ready.is_empty() {
        return Err(Problem::internal("a job claim needs at least one ready status"));
    }
    let ready: Vec<String> = (0..spec.ready.len()).map(|i| format!("${}", i + 4)).collect();
    let (claimer, lease) = (spec.ready.len() + 4, spec.ready.len() + 5);
    let due =
        spec.due_column.map_or_else(String::new, |c| format!(" AND ({c} IS NULL OR {c} <= $2)"));
    let claimable = format!(
        "(status IN ({}){due}) OR (status = $1 AND (lease_until IS NULL OR lease_until < $2))",
        ready.join(", ")
    );
    let table = spec.table;
    let probe = format!("SELECT id FROM {table} WHERE {claimable} LIMIT $3");
    let update = format!(
        "UPDATE {table} SET status = $1, claimed_by = ${claimer}, lease_until = ${lease} \
         WHERE id IN (SELECT id FROM {table} WHERE {claimable} ORDER BY id LIMIT $3) \
         AND ({claimable}) RETURNING id"
    );
    Ok((probe, update))
}

/// `$1` lease_until, `$2` id, `$3` running, `$4` claimer.
fn renew_sql(spec: &Claim) -> Result<String, Problem> {
    check(spec)?;
    Ok(format!(
        "UPDATE {} SET lease_until = $1 WHERE id = $2 AND status = $3 AND claimed_by = $4",
        spec.table
    ))
}

/// `$1` status, `$2` id, `$3` running, `$4` claimer, `$5…` the `set` values.
fn finish_sql(spec: &Claim, columns: &[&str]) -> Result<String, Problem> {
    check(spec)?;
    let mut assignments = String::from("status = $1, claimed_by = NULL, lease_until = NULL");
    for (i, column) in columns.iter().enumerate() {
        name(column)?;
        if matches!(*column, "id" | "status" | "claimed_by" | "lease_until")
            || columns[..i].contains(column)
        {
            return Err(Problem::internal(format!("a job's finish cannot set `{column}` here")));
        }
        assignments.push_str(&format!(", {column} = ${}", i + 5));
    }
    Ok(format!(
        "UPDATE {} SET {assignments} WHERE id = $2 AND status = $3 AND claimed_by = $4",
        spec.table
    ))
}

/// The table and the due column are names the SQL can hold as they are.
fn check(spec: &Claim) -> Result<(), Problem> {
    name(spec.table)?;
    if let Some(column) = spec.due_column {
        name(column)?;
    }
    Ok(())
}

fn name(text: &str) -> Result<(), Problem> {
    let mut chars = text.chars();
    let plain = text.len() <= MAX_NAME
        && chars.next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        Ok(())
    } else {
        Err(Problem::internal(format!("`{text}` is not a plain table or column name")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTBOX: Claim = Claim {
        table: "outbox",
        ready: &["queued", "failed"],
        running: "delivering",
        lease_ms: 60_000,
        due_column: Some("next_attempt_at"),
    };

    const CLAIMABLE: &str = "(status IN ($4, $5) AND (next_attempt_at IS NULL OR \
        next_attempt_at <= $2)) OR (status = $1 AND (lease_until IS NULL OR lease_until < $2))";

    #[test]
    fn a_claim_is_one_update_returning_the_ids_it_took() {
        let (probe, update) = claim_sql(&OUTBOX).unwrap();
        assert_eq!(probe, format!("SELECT id FROM outbox WHERE {CLAIMABLE} LIMIT $3"));
        assert_eq!(
            update,
            format!(
                "UPDATE outbox SET status = $1, claimed_by = $6, lease_until = $7 WHERE id IN \
                 (SELECT id FROM outbox WHERE {CLAIMABLE} ORDER BY id LIMIT $3) AND \
                 ({CLAIMABLE}) RETURNING id"
            )
        );
        let params = claim_params(&OUTBOX, "now", 10);
        assert_eq!(params.len(), 5, "the probe's: every one it names");
        assert!(matches!(&params[0], Value::Text(Some(s)) if s == "delivering"));
        assert!(matches!(params[2], Value::Int(Some(10))));
        assert!(matches!(&params[4], Value::Text(Some(s)) if s == "failed"));
    }

    #[test]
    fn without_a_due_column_every_ready_row_is_claimable() {
        let jobs = Claim { table: "jobs", ready: &["queued"], due_column: None, ..OUTBOX };
        let (probe, _) = claim_sql(&jobs).unwrap();
        assert_eq!(
            probe,
            "SELECT id FROM jobs WHERE (status IN ($4)) OR (status = $1 AND \
             (lease_until IS NULL OR lease_until < $2)) LIMIT $3"
        );
    }

    #[test]
    fn renew_and_finish_touch_only_a_row_still_ours() {
        assert_eq!(
            renew_sql(&OUTBOX).unwrap(),
            "UPDATE outbox SET lease_until = $1 WHERE id = $2 AND status = $3 AND claimed_by = $4"
        );
        assert_eq!(
            finish_sql(&OUTBOX, &["attempts", "last_error"]).unwrap(),
            "UPDATE outbox SET status = $1, claimed_by = NULL, lease_until = NULL, \
             attempts = $5, last_error = $6 WHERE id = $2 AND status = $3 AND claimed_by = $4"
        );
        assert!(finish_sql(&OUTBOX, &[]).unwrap().starts_with(
            "UPDATE outbox SET status = $1, claimed_by = NULL, lease_until = NULL WHERE"
        ));
    }

    #[test]
    fn names_are_checked_before_they_reach_the_sql() {
        let bad = Claim { table: "outbox; DROP TABLE x", ..OUTBOX };
        assert_eq!(claim_sql(&bad).unwrap_err().status, 500);
        let bad_due = Claim { due_column: Some("next attempt"), ..OUTBOX };
        assert!(renew_sql(&bad_due).is_err());
        let none_ready = Claim { ready: &[], ..OUTBOX };
        assert!(claim_sql(&none_ready).is_err());
        assert!(finish_sql(&OUTBOX, &["Bad"]).is_err());
        assert!(finish_sql(&OUTBOX, &["claimed_by"]).is_err(), "the lease columns are ours");
        assert!(finish_sql(&OUTBOX, &["a", "a"]).is_err(), "one assignment per column");
        assert!(name(&"a".repeat(64)).is_err() && name(&"a".repeat(63)).is_ok());
    }

    #[test]
    fn a_lease_end_saturates() {
        assert_eq!(lease_end(1_000, 500), 1_500);
        assert_eq!(lease_end(i64::MAX - 1, u64::MAX), i64::MAX);
    }
}
