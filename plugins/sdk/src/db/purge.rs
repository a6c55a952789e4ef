//! Purges in batches: the `{before, limit}` body every purge route takes (the retention pack
//! calls them), and the `DELETE` of the oldest rows before a cut-off, at most `limit` of them,
//! walked by an indexed column so a batch costs the same however large the table is.
//!
//! ```ignore
//! fn purge(Valid(body): Valid<db::PurgeRequest>) -> Result<Json<db::Purged>, Problem> {
//!     let removed = db::purge_oldest("honeypot_telemetry", "at", &db::Filter::new(), &body)?;
//!     Ok(Json(db::Purged { removed }))
//! }
//! ```

use crate::alloc_prelude::*;

use serde::{Deserialize, Serialize};

use super::{Filter, ToValue, Value, execute};
use crate::Validate;
use crate::problem::Problem;
use crate::schema::JsonSchema;

/// The most rows one purge call removes.
pub const MAX_PURGE: i64 = 5000;

/// `POST …/purge`: remove rows older than `before`, at most `limit` of them, oldest first.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct PurgeRequest {
    /// RFC 3339: rows strictly older than this go
    #[validate(rfc3339)]
    pub before: String,
    /// at most this many rows, 1..=5000 (default 1000)
    #[serde(default = "default_limit")]
    #[validate(range(min = 1, max = MAX_PURGE))]
    pub limit: i64,
}

fn default_limit() -> i64 {
    1000
}

impl PurgeRequest {
    /// `before` in the one stored format (text order is time order), once validated.
    pub fn cutoff(&self) -> Result<String, Problem> {
        crate::clock::parse_rfc3339(&self.before)
            .map(crate::clock::rfc3339)
            .ok_or_else(|| Problem::invalid_field("before", "must be an RFC 3339 timestamp"))
    }
}

/// What a purge removed.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
pub struct Purged {
    /// rows removed by this call; fewer than the limit means nothing older is left
    pub removed: i64,
}

/// Delete the oldest rows of `table` (by `column`, which must be indexed and hold stored
/// RFC 3339 text) that match `filter` and are older than `request.before`, at most
/// `request.limit`; answers how many went.
pub fn purge_oldest(
    table: &str,
    column: &str,
    filter: &Filter,
    request: &PurgeRequest,
) -> Result<i64, Problem> {
    let cutoff = request.cutoff()?;
    let limit = request.limit.clamp(1, MAX_PURGE);
    let sql = purge_sql(table, column, filter);
    let removed = execute(&sql, filter.params(vec![cutoff.to_value(), Value::Int(Some(limit))]))?;
    Ok(i64::try_from(removed).unwrap_or(i64::MAX))
}

/// `DELETE … WHERE id IN (SELECT id … WHERE <filter> AND column < $n ORDER BY column LIMIT
/// $n+1)`: portable (SQLite and PostgreSQL), one index range per batch.
fn purge_sql(table: &str, column: &str, filter: &Filter) -> String {
    let where_sql = filter.sql();
    let n = filter.next_param();
    let joiner = if where_sql.is_empty() { " WHERE" } else { " AND" };
    format!(
        "DELETE FROM {table} WHERE id IN (SELECT id FROM {table}{where_sql}{joiner} \
         {column} < ${n} ORDER BY {column} LIMIT ${})",
        n + 1
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::Validator;

    #[test]
    fn the_batch_is_the_oldest_matching_rows() {
        assert_eq!(
            purge_sql("t", "at", &Filter::new()),
            "DELETE FROM t WHERE id IN (SELECT id FROM t WHERE at < $1 ORDER BY at LIMIT $2)"
        );
        let mut filter = Filter::new();
        filter.eq("status", Some("delivered"));
        assert_eq!(
            purge_sql("o", "delivered_at", &filter),
            "DELETE FROM o WHERE id IN (SELECT id FROM o WHERE status = $1 AND delivered_at < $2 \
             ORDER BY delivered_at LIMIT $3)"
        );
    }

    #[test]
    fn before_and_limit_are_checked() {
        let req = |body: &str| serde_json::from_str::<PurgeRequest>(body).unwrap();
        let ok = req(r#"{"before": "2026-01-01T00:00:00+01:00"}"#);
        assert_eq!(ok.limit, 1000);
        assert!(Validator::of(&ok).is_ok());
        assert_eq!(ok.cutoff().unwrap(), "2025-12-31T23:00:00.000000Z");
        for (body, field) in [
            (r#"{"before": "yesterday"}"#, "before"),
            (r#"{"before": "2026-01-01T00:00:00Z", "limit": 0}"#, "limit"),
            (r#"{"before": "2026-01-01T00:00:00Z", "limit": 5001}"#, "limit"),
        ] {
            let p = Validator::of(&req(body)).unwrap_err();
            assert_eq!(p.errors[0].field, field, "{body}");
        }
        assert!(serde_json::from_str::<PurgeRequest>(r#"{"before": "x", "all": true}"#).is_err());
    }
}
