//! The artefact formats, written a page at a time: `json` is one JSON array of the source's
//! items as it answers them; `csv` is RFC 4180 (CRLF line ends, a header row of the source's
//! columns, a field quoted when it holds `,`, `"`, CR or LF, quotes doubled). A CSV cell is
//! the item's value in that column: text as is, numbers and booleans as JSON writes them,
//! null or missing as an empty field, objects and arrays as their JSON text.

use serde_json::Value;
use valhalla_sdk::alloc_prelude::*;

pub(crate) const JSON: &str = "json";
pub(crate) const CSV: &str = "csv";
pub(crate) const FORMATS: [&str; 2] = [JSON, CSV];

/// The response content type of a format's download.
pub(crate) fn content_type(format: &str) -> &'static str {
    if format == CSV { "text/csv; charset=utf-8" } else { "application/json" }
}

/// What goes before the first item: `[`, or the CSV header row.
pub(crate) fn preamble(format: &str, columns: &[&str]) -> Vec<u8> {
    if format == CSV {
        let mut out = Vec::new();
        let header: Vec<Value> = columns.iter().map(|c| Value::String((*c).into())).collect();
        csv_record(&mut out, header.iter());
        out
    } else {
        b"[".to_vec()
    }
}

/// What closes the artefact after the last item.
pub(crate) fn epilogue(format: &str) -> &'static [u8] {
    if format == CSV { b"" } else { b"]" }
}

/// `items` in `format`, `written` items having come before them (a JSON item after another
/// is preceded by a comma).
pub(crate) fn page(format: &str, columns: &[&str], items: &[Value], written: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(items.len() * 128);
    for (i, item) in items.iter().enumerate() {
        if format == CSV {
            csv_record(&mut out, columns.iter().map(|c| item.get(*c).unwrap_or(&Value::Null)));
        } else {
            if written > 0 || i > 0 {
                out.push(b',');
            }
            // a Value always serializes
            out.extend_from_slice(serde_json::to_string(item).unwrap_or_default().as_bytes());
        }
    }
    out
}

/// One CSV record of `cells`, CRLF-terminated.
fn csv_record<'a>(out: &mut Vec<u8>, cells: impl Iterator<Item = &'a Value>) {
    for (i, cell) in cells.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match cell {
            Value::Null => {}
            Value::String(s) => csv_field(out, s),
            Value::Bool(_) | Value::Number(_) => csv_field(out, &cell.to_string()),
            Value::Array(_) | Value::Object(_) => csv_field(out, &cell.to_string()),
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// A field, quoted when it must be (RFC 4180 §2.6–2.7).
fn csv_field(out: &mut Vec<u8>, text: &str) {
    if text.bytes().any(|b| matches!(b, b',' | b'"' | b'\r' | b'\n')) {
        out.push(b'"');
        for b in text.bytes() {
            if b == b'"' {
                out.push(b'"');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(text.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn whole(format: &str, columns: &[&str], pages: &[Vec<Value>]) -> String {
        let mut out = preamble(format, columns);
        let mut written = 0;
        for items in pages {
            out.extend(page(format, columns, items, written));
            written += items.len() as u64;
        }
        out.extend_from_slice(epilogue(format));
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn json_pages_make_one_array() {
        let pages = [vec![json!({"a": 1}), json!({"a": 2})], vec![], vec![json!({"a": "x\"y"})]];
        let text = whole(JSON, &[], &pages);
        assert_eq!(text, r#"[{"a":1},{"a":2},{"a":"x\"y"}]"#);
        let parsed: Vec<Value> = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed.len(), 3);
        assert_eq!(whole(JSON, &[], &[]), "[]");
    }

    #[test]
    fn csv_quotes_what_it_must() {
        let items = vec![
            json!({"key": "plain", "value": "a,b", "n": 3, "ok": true, "none": null}),
            json!({"key": "q\"uote", "value": "line\r\nbreak", "n": 1.5, "ok": false}),
            json!({"key": " spaced ", "value": {"j": [1]}, "n": -1}),
        ];
        let text = whole(CSV, &["key", "value", "n", "ok", "none"], &[items]);
        assert_eq!(
            text,
            "key,value,n,ok,none\r\n\
             plain,\"a,b\",3,true,\r\n\
             \"q\"\"uote\",\"line\r\nbreak\",1.5,false,\r\n\
             \x20spaced ,\"{\"\"j\"\":[1]}\",-1,,\r\n"
        );
        assert_eq!(whole(CSV, &["a", "b"], &[]), "a,b\r\n", "no rows: the header alone");
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type(CSV), "text/csv; charset=utf-8");
        assert_eq!(content_type(JSON), "application/json");
    }
}
