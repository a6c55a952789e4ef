//! `GET /system/logs`: the filters (level, category, correlation_id, source, user_id, since,
//! until), newest first by `(logged_at, id)`, in keyset pages (`cursor` in, `next_cursor`
//! out: any page costs the same, and entries written meanwhile neither repeat nor go missing)
//! or, for older clients, `limit`/`offset` pages, which answer `next_cursor` too. Each filter
//! has an index `(its columns…, logged_at, id)` (migration 0002).
//!
//! `total` counts the matching entries up to [`TOTAL_CAP`] (`total_capped: true` past it), so
//! a list of a million-row log stays cheap; `total=exact` counts them all.

use valhalla_sdk::FromRequest;
use valhalla_sdk::prelude::*;

use crate::entries::{Entry, known_level, level};

/// The most entries `total` counts unless `total=exact` is asked for.
pub(crate) const TOTAL_CAP: i64 = 10_000;
const TABLE: &str = "system_logs";
const KEY: &str = "logged_at";

/// `GET /system/logs?level=…&category=…&correlation_id=…&source=…&user_id=…&since=…&until=…`
#[derive(Deserialize, Validate)]
pub(crate) struct Search {
    #[validate(custom(function = known_level))]
    level: Option<String>,
    #[validate(length(min = 1, max = 64))]
    category: Option<String>,
    #[validate(length(min = 1, max = 128))]
    correlation_id: Option<String>,
    #[validate(length(min = 1, max = 64))]
    source: Option<String>,
    #[validate(length(min = 1, max = 128))]
    user_id: Option<String>,
    /// entries at or after this time
    #[validate(rfc3339)]
    since: Option<String>,
    /// entries before this time
    #[validate(rfc3339)]
    until: Option<String>,
    /// `capped` (the default: counted up to 10 000) or `exact`
    #[validate(one_of = ["capped", "exact"])]
    total: Option<String>,
}

/// A stored-format timestamp (text order is time order) of a validated RFC 3339 value.
fn stored(raw: Option<String>) -> Option<String> {
    raw.and_then(|r| clock::parse_rfc3339(&r)).map(clock::rfc3339)
}

fn filter_of(q: Search) -> db::Filter {
    let mut filter = db::Filter::new();
    filter
        .eq("category", q.category)
        .eq("level", q.level.as_deref().and_then(level))
        .eq("correlation_id", q.correlation_id)
        .eq("source", q.source)
        .eq("user_id", q.user_id)
        .push(KEY, ">=", stored(q.since))
        .push(KEY, "<", stored(q.until));
    filter
}

pub(crate) fn list(
    req: Request,
    ValidQuery(q): ValidQuery<Search>,
) -> Result<Json<db::KeysetList<Entry>>, Problem> {
    let page = Page::from_request(&req)?;
    let keyset = db::CursorPage::from_request(&req)?;
    let exact = q.total.as_deref() == Some("exact");
    let filter = filter_of(q);
    if keyset.cursor.is_some() && page.offset != 0 {
        return Err(Problem::invalid_field("offset", "cannot be combined with `cursor`"));
    }
    // Counted before the page is read: entries keep arriving (the host writes them in
    // batches), so a page read after its count never shows fewer entries than `total` says.
    let (total, total_capped) = if exact {
        (
            db::query_scalar(
                &format!("SELECT COUNT(*) FROM {TABLE}{}", filter.sql()),
                filter.params(vec![]),
            )?,
            false,
        )
    } else {
        db::count_capped(TABLE, &filter, TOTAL_CAP)?
    };
    let columns = db::select_list::<Entry>();
    let (items, next_cursor) = if keyset.cursor.is_some() {
        db::keyset_rows::<Entry>(TABLE, &columns, &filter, KEY, &keyset)?
    } else {
        offset_rows(&columns, &filter, page)?
    };
    Ok(Json(db::KeysetList { total, total_capped, items, next_cursor }))
}

/// A `limit`/`offset` page in the keyset's order, with the cursor that continues after it.
fn offset_rows(
    columns: &str,
    filter: &db::Filter,
    page: Page,
) -> Result<(Vec<Entry>, Option<String>), Problem> {
    let n = filter.next_param();
    let sql = format!(
        "SELECT {columns} FROM {TABLE}{} ORDER BY {KEY} DESC, id DESC LIMIT ${n} OFFSET ${}",
        filter.sql(),
        n + 1
    );
    let rows = db::query(&sql, filter.params(params![page.limit.saturating_add(1), page.offset]))?;
    db::rows_and_cursor(&rows, KEY, page.limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn search(level: &str, since: &str, total: &str) -> Search {
        Search {
            level: Some(level.into()),
            category: None,
            correlation_id: None,
            source: None,
            user_id: None,
            since: Some(since.into()),
            until: Some("2026-11-24T00:00:00+01:00".into()),
            total: Some(total.into()),
        }
    }

    #[test]
    fn search_parameters_are_checked() {
        assert!(Validator::of(&search("warning", "2026-11-23T08:00:00Z", "exact")).is_ok());
        let p = Validator::of(&search("LOUD", "yesterday", "all")).unwrap_err();
        let fields: Vec<_> = p.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["level", "since", "total"]);
    }

    #[test]
    fn filters_come_in_index_order_and_times_in_the_stored_format() {
        let filter = filter_of(search("warning", "2026-11-23T08:00:00Z", "capped"));
        assert_eq!(filter.sql(), " WHERE level = $1 AND logged_at >= $2 AND logged_at < $3");
        let params = filter.params(vec![]);
        assert!(
            matches!(&params[2], db::Value::Text(Some(t)) if t == "2026-11-23T23:00:00.000000Z"),
            "{params:?}"
        );
    }
}
