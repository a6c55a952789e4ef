//! Lists ordered by a unique text key (config entries, flags), paged by `limit`/`offset` as
//! before or by keyset: `cursor` is the last key of the previous page (its `next_cursor`),
//! and the page is the rows after it. A keyset page costs the same however deep it is, and
//! rows written meanwhile neither repeat nor go missing — what an export walking a whole list
//! needs.
//!
//! ```ignore
//! fn list(page: db::KeyPage) -> Result<Json<db::KeyList<Entry>>, Problem> {
//!     db::key_page::<Entry>(&db::Filter::new(), "key", page)
//! }
//! ```

use crate::alloc_prelude::*;

use serde::Serialize;

use super::{Filter, Record, ToValue, Value, query, query_scalar, select_list};
use crate::extract::{FromRequest, Json};
use crate::problem::{FieldError, Problem};
use crate::request::Request;
use crate::schema::JsonSchema;

/// The longest `cursor` accepted.
const MAX_CURSOR: usize = 256;

/// `limit` (1..=1000, default 50), `offset` (>= 0) and `cursor` (the `next_cursor` of the
/// previous page) of a key-ordered list; `offset` and `cursor` do not go together.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPage {
    /// how many items
    pub limit: i64,
    /// items to skip (limit/offset paging)
    pub offset: i64,
    /// the last key of the previous page: this page has the keys after it
    pub cursor: Option<String>,
}

impl FromRequest for KeyPage {
    fn from_request(req: &Request) -> Result<Self, Problem> {
        let page = req.page();
        let cursor = req.query("cursor").filter(|c| !c.is_empty());
        let mut errors = Vec::new();
        if cursor.is_some_and(|c| c.len() > MAX_CURSOR || c.chars().any(char::is_control)) {
            errors.push(FieldError::new("cursor", "must be the `next_cursor` of a previous page"));
        }
        match page {
            Ok(p) if cursor.is_some() && p.offset > 0 => {
                errors.push(FieldError::new("offset", "cannot be combined with `cursor`"));
            }
            Ok(_) => {}
            Err(p) => errors.extend(p.errors),
        }
        if !errors.is_empty() {
            return Err(Problem::validation(errors));
        }
        let page = req.page()?;
        Ok(Self { limit: page.limit, offset: page.offset, cursor: cursor.map(str::to_string) })
    }
}

/// A page of a key-ordered list: `{"total": N, "items": [...], "next_cursor": "…" | null}`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct KeyList<T> {
    /// every item matching the filter, on all pages
    pub total: i64,
    /// this page's items, in key order
    pub items: Vec<T>,
    /// the `cursor` of the next page; `null` on the last one
    pub next_cursor: Option<String>,
}

/// One page of `T`'s rows matching `filter`, in the order of the unique text column `key`
/// (which `T` must answer under that name).
pub fn key_page<T: Record>(
    filter: &Filter,
    key: &'static str,
    page: KeyPage,
) -> Result<Json<KeyList<T>>, Problem> {
    let (count_sql, page_sql) =
        key_queries(T::TABLE, &select_list::<T>(), filter, key, page.cursor.is_some());
    let total = query_scalar(&count_sql, filter.params(vec![]))?;
    let mut extra = Vec::new();
    if let Some(cursor) = &page.cursor {
        extra.push(cursor.to_value());
    }
    // one more than asked for: whether it comes says whether there is a next page
    extra.push(Value::Int(Some(page.limit.saturating_add(1))));
    extra.push(Value::Int(Some(page.offset)));
    let rows = query(&page_sql, filter.params(extra))?;
    let limit = usize::try_from(page.limit.max(0)).unwrap_or(usize::MAX);
    let more = rows.len() > limit;
    let mut items = Vec::with_capacity(rows.len().min(limit));
    let mut last = None;
    for row in rows.iter().take(limit) {
        last = Some(row.get::<String>(key)?);
        items.push(row.decode::<T>()?);
    }
    Ok(Json(KeyList { total, items, next_cursor: if more { last } else { None } }))
}

/// The `COUNT(*)` (the filter alone) and the page `SELECT` (the filter, `key > $cursor` when
/// there is one, then the limit and the offset).
fn key_queries(
    table: &str,
    columns: &str,
    filter: &Filter,
    key: &str,
    has_cursor: bool,
) -> (String, String) {
    let where_sql = filter.sql();
    let mut n = filter.next_param();
    let count = format!("SELECT COUNT(*) FROM {table}{where_sql}");
    let mut page_where = where_sql;
    if has_cursor {
        let joiner = if page_where.is_empty() { " WHERE" } else { " AND" };
        page_where.push_str(&format!("{joiner} {key} > ${n}"));
        n += 1;
    }
    let page = format!(
        "SELECT {columns} FROM {table}{page_where} ORDER BY {key} LIMIT ${n} OFFSET ${}",
        n + 1
    );
    (count, page)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::valhalla::pack::types as wit;

    fn page_of(query: &[(&str, &str)]) -> Result<KeyPage, Problem> {
        let request = wit::Request {
            method: wit::Method::Get,
            path: "/x".into(),
            route: "/x".into(),
            params: vec![],
            query: query.iter().map(|(n, v)| ((*n).to_string(), (*v).to_string())).collect(),
            headers: vec![],
            body: vec![],
            request_id: "rid".into(),
            principal: None,
            client_ip: "127.0.0.1".into(),
        };
        KeyPage::from_request(&Request::new(request))
    }

    #[test]
    fn the_cursor_is_a_key_after_the_filter() {
        let mut filter = Filter::new();
        filter.eq("flag_group", Some("ui"));
        let (count, page) = key_queries("t", "id, key", &filter, "key", true);
        assert_eq!(count, "SELECT COUNT(*) FROM t WHERE flag_group = $1");
        assert_eq!(
            page,
            "SELECT id, key FROM t WHERE flag_group = $1 AND key > $2 ORDER BY key LIMIT $3 OFFSET $4"
        );
        let (_, first) = key_queries("t", "id", &Filter::new(), "key", false);
        assert_eq!(first, "SELECT id FROM t ORDER BY key LIMIT $1 OFFSET $2");
        let (_, next) = key_queries("t", "id", &Filter::new(), "key", true);
        assert_eq!(next, "SELECT id FROM t WHERE key > $1 ORDER BY key LIMIT $2 OFFSET $3");
    }

    #[test]
    fn limit_offset_and_cursor_come_from_the_query() {
        assert_eq!(page_of(&[]).unwrap(), KeyPage { limit: 50, offset: 0, cursor: None });
        let p = page_of(&[("limit", "2"), ("cursor", "a.b")]).unwrap();
        assert_eq!(p, KeyPage { limit: 2, offset: 0, cursor: Some("a.b".into()) });
        assert_eq!(page_of(&[("offset", "5")]).unwrap().offset, 5);
        for (query, field) in [
            (&[("limit", "0")][..], "limit"),
            (&[("offset", "-1")][..], "offset"),
            (&[("cursor", "a"), ("offset", "3")][..], "offset"),
            (&[("cursor", "a\u{1}")][..], "cursor"),
        ] {
            let p = page_of(query).unwrap_err();
            assert_eq!((p.status, p.errors[0].field.as_str()), (422, field), "{query:?}");
        }
    }
}
