//! Keyset pages ordered by a column of the pack's choice (e.g. `logged_at`), ties broken by
//! `id`: newest first by `(column DESC, id DESC)`, the next page being the rows below the last
//! one seen. The `cursor` is opaque to clients (hex of the last row's key and id); rows written
//! meanwhile neither repeat nor go missing, and a page costs the same however deep it is when
//! an index `(filter columns…, column, id)` matches. Counting every match is what makes a list
//! slow on a large table, so [`count_capped`] counts at most a cap.
//!
//! ```ignore
//! let (items, next_cursor) =
//!     db::keyset_rows::<Entry>("system_logs", &cols, &filter, "logged_at", &page)?;
//! let (total, capped) = db::count_capped("system_logs", &filter, 10_000)?;
//! ```

use crate::alloc_prelude::*;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Filter, Row, ToValue, Value, query, query_scalar};
use crate::problem::Problem;
use crate::schema::JsonSchema;

use super::CursorPage;

/// A keyset page with a cheap total: `{"total": N, "total_capped": bool, "items": [...],
/// "next_cursor": "…" | null}`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct KeysetList<T> {
    /// items matching the filter on all pages, counted up to a cap (see `total_capped`)
    pub total: i64,
    /// true when more items match than `total` says (the count stopped at its cap)
    pub total_capped: bool,
    /// this page's items, newest first
    pub items: Vec<T>,
    /// the `cursor` of the next page; `null` on the last one
    pub next_cursor: Option<String>,
}

/// The opaque cursor of a row whose key column holds `key`.
pub fn encode_cursor(key: &str, id: &str) -> String {
    let mut raw = String::with_capacity(key.len() + id.len() + 1);
    raw.push_str(key);
    raw.push('\n');
    raw.push_str(id);
    hex::encode(raw.as_bytes())
}

/// `(key, id)` of a cursor made by [`encode_cursor`]; anything else is a 422 naming `cursor`.
pub fn decode_cursor(cursor: &str) -> Result<(String, String), Problem> {
    let bad = || Problem::invalid_field("cursor", "must be the `next_cursor` of a previous page");
    let bytes = hex::decode(cursor).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let (key, id) = text.split_once('\n').ok_or_else(bad)?;
    if key.is_empty() || id.is_empty() || id.contains('\n') {
        return Err(bad());
    }
    Ok((key.to_string(), id.to_string()))
}

/// One keyset page of `table` (rows matching `filter`, newest first by `(key, id)`) decoded
/// into `T` from `columns` (which must answer `key` and `id`), and the next page's cursor.
pub fn keyset_rows<T: DeserializeOwned>(
    table: &str,
    columns: &str,
    filter: &Filter,
    key: &str,
    page: &CursorPage,
) -> Result<(Vec<T>, Option<String>), Problem> {
    let after = page.cursor.as_deref().map(decode_cursor).transpose()?;
    let sql = keyset_query(table, columns, filter, key, after.is_some());
    let mut extra = Vec::new();
    if let Some((k, id)) = &after {
        extra.extend([k.to_value(), k.to_value(), id.to_value()]);
    }
    // one more than asked for: whether it comes says whether there is a next page
    extra.push(Value::Int(Some(page.limit.saturating_add(1))));
    let rows = query(&sql, filter.params(extra))?;
    rows_and_cursor(&rows, key, page.limit)
}

/// The first `limit` rows decoded, and the cursor of the last one when a row beyond it came.
pub fn rows_and_cursor<T: DeserializeOwned>(
    rows: &[Row],
    key: &str,
    limit: i64,
) -> Result<(Vec<T>, Option<String>), Problem> {
    let limit = usize::try_from(limit.max(0)).unwrap_or(usize::MAX);
    let kept = &rows[..rows.len().min(limit)];
    let next = match kept.last() {
        Some(last) if rows.len() > limit => {
            Some(encode_cursor(&last.get::<String>(key)?, &last.get::<String>("id")?))
        }
        _ => None,
    };
    let items = kept.iter().map(Row::decode).collect::<Result<Vec<T>, Problem>>()?;
    Ok((items, next))
}

/// The cursor that continues after the last of `rows` (a `limit`/`offset` page), if any:
/// lets a client that paged by offset go on by cursor.
pub fn cursor_after(rows: &[Row], key: &str) -> Result<Option<String>, Problem> {
    match rows.last() {
        Some(last) => {
            Ok(Some(encode_cursor(&last.get::<String>(key)?, &last.get::<String>("id")?)))
        }
        None => Ok(None),
    }
}

/// How many rows match `filter`, counting at most `cap` (and whether there are more): an
/// index walk of at most `cap + 1` entries, however large the table.
pub fn count_capped(table: &str, filter: &Filter, cap: i64) -> Result<(i64, bool), Problem> {
    let n = filter.next_param();
    let sql = format!(
        "SELECT COUNT(*) FROM (SELECT 1 AS one FROM {table}{} LIMIT ${n}) AS capped",
        filter.sql()
    );
    let counted = query_scalar(&sql, filter.params(vec![Value::Int(Some(cap.saturating_add(1)))]))?;
    Ok((counted.min(cap), counted > cap))
}

/// The page `SELECT`: the filter, then `key <= $k AND (key < $k OR id < $id)` after a cursor
/// (a range on the index, then the tie-break), newest first, the limit last.
fn keyset_query(table: &str, columns: &str, filter: &Filter, key: &str, after: bool) -> String {
    let mut where_sql = filter.sql();
    let mut n = filter.next_param();
    if after {
        let joiner = if where_sql.is_empty() { " WHERE" } else { " AND" };
        where_sql.push_str(&format!(
            "{joiner} {key} <= ${n} AND ({key} < ${} OR id < ${})",
            n + 1,
            n + 2
        ));
        n += 3;
    }
    format!("SELECT {columns} FROM {table}{where_sql} ORDER BY {key} DESC, id DESC LIMIT ${n}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cursor_is_opaque_and_round_trips() {
        let c = encode_cursor("2026-11-23T08:47:31.100000Z", "0195-abc");
        assert!(c.bytes().all(|b| b.is_ascii_hexdigit()), "{c}");
        assert_eq!(
            decode_cursor(&c).unwrap(),
            ("2026-11-23T08:47:31.100000Z".into(), "0195-abc".into())
        );
        for bad in [
            "zz",
            "00",
            &hex::encode("no-newline"),
            &hex::encode("\nid"),
            &hex::encode([0xff, b'\n', b'a']),
        ] {
            let p = decode_cursor(bad).unwrap_err();
            assert_eq!((p.status, p.errors[0].field.as_str()), (422, "cursor"), "{bad}");
        }
    }

    #[test]
    fn the_keyset_comes_after_the_filter_and_the_limit_last() {
        let mut filter = Filter::new();
        filter.eq("category", Some("audit"));
        let page = keyset_query("logs", "id, at", &filter, "at", true);
        assert_eq!(
            page,
            "SELECT id, at FROM logs WHERE category = $1 AND at <= $2 AND (at < $3 OR id < $4) \
             ORDER BY at DESC, id DESC LIMIT $5"
        );
        let first = keyset_query("logs", "id", &Filter::new(), "at", false);
        assert_eq!(first, "SELECT id FROM logs ORDER BY at DESC, id DESC LIMIT $1");
        let bare = keyset_query("logs", "id", &Filter::new(), "at", true);
        assert!(bare.starts_with("SELECT id FROM logs WHERE at <= $1 AND (at < $2 OR id < $3)"));
    }

    #[test]
    fn rows_beyond_the_limit_give_the_cursor_of_the_last_kept() {
        let rows: Vec<Row> = (0..3)
            .map(|i| {
                Row::from_parts(
                    vec!["id".into(), "at".into()],
                    vec![Value::Text(Some(format!("id{i}"))), Value::Text(Some(format!("t{i}")))],
                )
            })
            .collect();
        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct R {
            id: String,
        }
        let (items, next) = rows_and_cursor::<R>(&rows, "at", 2).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(decode_cursor(&next.unwrap()).unwrap(), ("t1".into(), "id1".into()));
        let (items, next) = rows_and_cursor::<R>(&rows, "at", 3).unwrap();
        assert_eq!((items.len(), next), (3, None), "exactly full: the last page");
        let after = cursor_after(&rows, "at").unwrap().unwrap();
        assert_eq!(decode_cursor(&after).unwrap(), ("t2".into(), "id2".into()));
        assert_eq!(cursor_after(&[], "at").unwrap(), None);
    }
}
