//! Keyset-paged lists for tables that grow large (telemetry, logs, outboxes): newest first by
//! `id DESC` (ids are UUID v7, so id order is creation order), the next page being the rows
//! whose id is below the last one seen. Unlike `limit`/`offset`, a page costs the same however
//! deep it is, and rows written meanwhile neither repeat nor go missing.
//!
//! ```ignore
//! fn hits(page: db::CursorPage, Query(q): Query<HitQuery>) -> Result<Json<db::CursorList<Hit>>, Problem> {
//!     let mut filter = db::Filter::new();
//!     filter.since("at", q.since.as_deref())?.eq("source_ip", q.source_ip);
//!     db::cursor_page::<Hit>(&filter, page)
//! }
//! ```

use crate::alloc_prelude::*;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Filter, Record, Row, query, query_scalar, select_list};
use crate::extract::{FromRequest, Json};
use crate::problem::{FieldError, Problem};
use crate::request::{DEFAULT_LIMIT, MAX_LIMIT, Request};
use crate::schema::JsonSchema;

/// The longest `cursor` accepted (an id is 36 characters; a keyset cursor, hex of a key and
/// an id, ~130).
const MAX_CURSOR: usize = 512;

/// `limit` (1..=1000, default 50, as [`Page`](crate::Page)) and `cursor` (the `next_cursor`
/// of the previous page; absent or empty for the first page) of a keyset-paged list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorPage {
    /// how many items, 1..=1000
    pub limit: i64,
    /// the id of the previous page's last item: this page has the rows below it
    pub cursor: Option<String>,
}

impl Default for CursorPage {
    fn default() -> Self {
        Self { limit: DEFAULT_LIMIT, cursor: None }
    }
}

/// `limit` and `cursor` from the query; a bad one is a 422 naming it.
impl FromRequest for CursorPage {
    fn from_request(req: &Request) -> Result<Self, Problem> {
        let mut errors = Vec::new();
        let limit = req.query_as::<i64>("limit").unwrap_or_else(|p| {
            errors.extend(p.errors);
            None
        });
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            errors.push(FieldError::new("limit", format!("must be between 1 and {MAX_LIMIT}")));
        }
        let cursor = req.query("cursor").filter(|c| !c.is_empty());
        if cursor.is_some_and(|c| c.len() > MAX_CURSOR || c.chars().any(char::is_control)) {
            errors.push(FieldError::new("cursor", "must be the `next_cursor` of a previous page"));
        }
        if errors.is_empty() {
            Ok(Self { limit, cursor: cursor.map(str::to_string) })
        } else {
            Err(Problem::validation(errors))
        }
    }
}

/// A keyset page: `{"total": N, "items": [...], "next_cursor": "…" | null}`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct CursorList<T> {
    /// every item matching the filter, on all pages
    pub total: i64,
    /// this page's items, newest first
    pub items: Vec<T>,
    /// the `cursor` of the next page; `null` on the last one
    pub next_cursor: Option<String>,
}

impl Filter {
    /// `column >= $N` for an RFC 3339 `since` (e.g. from the query), when present. The value
    /// is compared in the SDK's one stored format ([`clock::rfc3339`](crate::clock::rfc3339)),
    /// so it must be a column written with [`clock::now_rfc3339`](crate::clock::now_rfc3339).
    /// A value that is not RFC 3339 is a 422 naming `since`.
    pub fn since(
        &mut self,
        column: &'static str,
        since: Option<&str>,
    ) -> Result<&mut Self, Problem> {
        let Some(text) = since else { return Ok(self) };
        let ms = crate::clock::parse_rfc3339(text).ok_or_else(|| {
            Problem::invalid_field(
                "since",
                "must be an RFC 3339 timestamp like 2026-11-23T08:00:00Z",
            )
        })?;
        Ok(self.push(column, ">=", Some(crate::clock::rfc3339(ms))))
    }
}

/// One keyset page of `T`'s rows matching `filter` (whose columns are the stored names),
/// newest first by `id`.
pub fn cursor_page<T: Record>(
    filter: &Filter,
    page: CursorPage,
) -> Result<Json<CursorList<T>>, Problem> {
    cursor_page_with(T::TABLE, &select_list::<T>(), filter, page)
}

/// [`cursor_page`] of `table` with the select list spelled out; it must answer the `id`
/// column, which the cursor is made of.
pub fn cursor_page_with<T: DeserializeOwned>(
    table: &str,
    columns: &str,
    filter: &Filter,
    page: CursorPage,
) -> Result<Json<CursorList<T>>, Problem> {
    let (count_sql, page_sql) = cursor_queries(table, columns, filter, page.cursor.is_some());
    let total = query_scalar(&count_sql, filter.params(vec![]))?;
    let mut extra = Vec::new();
    if let Some(cursor) = &page.cursor {
        extra.push(super::ToValue::to_value(cursor));
    }
    // one more than asked for: whether it comes says whether there is a next page
    extra.push(super::Value::Int(Some(page.limit.saturating_add(1))));
    let rows = query(&page_sql, filter.params(extra))?;
    let keyed = rows.iter().map(keyed_row).collect::<Result<Vec<_>, Problem>>()?;
    let (items, next_cursor) = split_page(keyed, page.limit);
    Ok(Json(CursorList { total, items, next_cursor }))
}

fn keyed_row<T: DeserializeOwned>(row: &Row) -> Result<(String, T), Problem> {
    Ok((row.get::<String>("id")?, row.decode::<T>()?))
}

/// The first `limit` of `rows` (fetched `limit + 1`), and the cursor of the next page: the
/// last kept row's id, when a row beyond it came.
fn split_page<T>(mut rows: Vec<(String, T)>, limit: i64) -> (Vec<T>, Option<String>) {
    let limit = usize::try_from(limit.max(0)).unwrap_or(usize::MAX);
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next = if more { rows.last().map(|(id, _)| id.clone()) } else { None };
    (rows.into_iter().map(|(_, item)| item).collect(), next)
}

/// The `COUNT(*)` (the filter alone) and the page `SELECT` (the filter, then `id < $cursor`
/// when there is one, then the limit), numbered after the filter's parameters.
fn cursor_queries(
    table: &str,
    columns: &str,
    filter: &Filter,
    has_cursor: bool,
) -> (String, String) {
    let where_sql = filter.sql();
    let mut n = filter.next_param();
    let count = format!("SELECT COUNT(*) FROM {table}{where_sql}");
    let mut page_where = where_sql;
    if has_cursor {
        let joiner = if page_where.is_empty() { " WHERE" } else { " AND" };
        page_where.push_str(&format!("{joiner} id < ${n}"));
        n += 1;
    }
    let page = format!("SELECT {columns} FROM {table}{page_where} ORDER BY id DESC LIMIT ${n}");
    (count, page)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::valhalla::pack::types as wit;
    use crate::db::Value;

    fn page_of(query: &[(&str, &str)]) -> Result<CursorPage, Problem> {
        let request = wit::Request {
            method: wit::Method::Get,
            path: "/hits".into(),
            route: "/hits".into(),
            params: vec![],
            query: query.iter().map(|(n, v)| ((*n).to_string(), (*v).to_string())).collect(),
            headers: vec![],
            body: vec![],
            request_id: "rid".into(),
            principal: None,
            client_ip: "127.0.0.1".into(),
        };
        CursorPage::from_request(&Request::new(request))
    }

    #[test]
    fn the_cursor_comes_after_the_filter_and_the_limit_last() {
        let mut filter = Filter::new();
        filter.eq("source_ip", Some("10.0.0.1")).eq("severity", None::<&str>);
        let (count, page) = cursor_queries("hits", "id, at", &filter, true);
        assert_eq!(count, "SELECT COUNT(*) FROM hits WHERE source_ip = $1");
        assert_eq!(
            page,
            "SELECT id, at FROM hits WHERE source_ip = $1 AND id < $2 ORDER BY id DESC LIMIT $3"
        );
        let (_, first) = cursor_queries("hits", "id, at", &filter, false);
        assert_eq!(first, "SELECT id, at FROM hits WHERE source_ip = $1 ORDER BY id DESC LIMIT $2");
    }

    #[test]
    fn without_a_filter_the_cursor_is_the_where() {
        let (count, page) = cursor_queries("hits", "id", &Filter::new(), true);
        assert_eq!(count, "SELECT COUNT(*) FROM hits");
        assert_eq!(page, "SELECT id FROM hits WHERE id < $1 ORDER BY id DESC LIMIT $2");
    }

    #[test]
    fn a_row_beyond_the_limit_gives_the_next_cursor() {
        let rows = |n: usize| (0..n).map(|i| (format!("id{i}"), i)).collect::<Vec<_>>();
        assert_eq!(split_page(rows(3), 2), (vec![0, 1], Some("id1".to_string())));
        assert_eq!(split_page(rows(2), 2), (vec![0, 1], None), "exactly full: the last page");
        assert_eq!(split_page(rows(1), 2), (vec![0], None));
        assert_eq!(split_page(rows(0), 2), (vec![], None));
    }

    #[test]
    fn limit_and_cursor_come_from_the_query() {
        assert_eq!(page_of(&[]).unwrap(), CursorPage::default());
        assert_eq!(page_of(&[]).unwrap().limit, 50);
        let page = page_of(&[("limit", "2"), ("cursor", "0195")]).unwrap();
        assert_eq!(page, CursorPage { limit: 2, cursor: Some("0195".into()) });
        assert_eq!(page_of(&[("cursor", "")]).unwrap().cursor, None, "empty is the first page");
        for (query, field) in [
            (&[("limit", "0")][..], "limit"),
            (&[("limit", "1001")][..], "limit"),
            (&[("limit", "x")][..], "limit"),
            (&[("cursor", "a\u{1}b")][..], "cursor"),
        ] {
            let p = page_of(query).unwrap_err();
            assert_eq!((p.status, p.errors[0].field.as_str()), (422, field), "{query:?}");
        }
        let both = page_of(&[("limit", "0"), ("cursor", &"x".repeat(513))]).unwrap_err();
        assert_eq!(both.errors.len(), 2);
    }

    #[test]
    fn since_is_compared_in_the_stored_format() {
        let mut filter = Filter::new();
        filter.since("at", Some("2026-11-23T09:47:31.1+01:00")).unwrap().since("x", None).unwrap();
        assert_eq!(filter.sql(), " WHERE at >= $1");
        let params = filter.params(vec![]);
        assert!(
            matches!(params.as_slice(), [Value::Text(Some(t))] if t == "2026-11-23T08:47:31.100000Z"),
            "{params:?}"
        );
        let p = Filter::new().since("at", Some("yesterday")).err().unwrap();
        assert_eq!((p.status, p.errors[0].field.as_str()), (422, "since"));
    }
}
