//! Telemetry: one record per hit (a decoy the host served, or an external sensor's report),
//! how it is stored, and the keyset-paged lists per honeypot and across all of them.

use alloc::collections::BTreeMap;
use core::net::IpAddr;

use valhalla_sdk::prelude::*;

use crate::honeypots::{Honeypot, SEVERITIES};

const ORIGINS: [&str; 2] = ["decoy", "sensor"];
/// Headers a record keeps, at most, and the longest name and value kept.
const MAX_HEADERS: usize = 64;
const MAX_HEADER_NAME: usize = 128;
const MAX_HEADER_VALUE: usize = 1024;
pub(crate) const MAX_USER_AGENT: usize = 512;
pub(crate) const MAX_QUERY: usize = 2048;
const MAX_REPORTED_PATH: usize = 2048;
/// Header names that may carry a secret, as parts of the (lower-case) name: never recorded.
/// (The host already keeps the credential headers from every pack.)
const SECRET_PARTS: [&str; 6] = ["token", "secret", "key", "auth", "cookie", "session"];

/// One hit as stored and answered.
#[derive(Serialize, Deserialize, JsonSchema)]
pub(crate) struct Telemetry {
    pub id: String,
    pub honeypot_id: String,
    /// `decoy` (the host served the decoy) or `sensor` (an external sensor reported it)
    pub origin: String,
    pub source_ip: String,
    pub method: Option<String>,
    pub path: Option<String>,
    pub query: Option<String>,
    pub user_agent: Option<String>,
    /// header name → value, without credentials or secret-looking headers
    #[serde(deserialize_with = "db::json_text")]
    pub headers: BTreeMap<String, String>,
    /// `low`, `medium`, `high` or `critical`
    pub severity: String,
    /// whether the source was put on the blocklist for this hit
    pub blocked: bool,
    /// the blocklist rule this hit created
    pub block_rule_id: Option<String>,
    /// why blocking failed, when it was asked for and did not happen
    pub block_error: Option<String>,
    /// who reported it (a sensor's principal); none for decoy hits
    pub reported_by: Option<String>,
    pub at: String,
}

impl db::Record for Telemetry {
    const TABLE: &'static str = "honeypot_telemetry";
    const WHAT: &'static str = "telemetry record";
}

impl Telemetry {
    fn params(&self) -> Vec<db::Value> {
        let headers = serde_json::to_string(&self.headers).unwrap_or_else(|_| "{}".into());
        params![
            self.id.as_str(),
            self.honeypot_id.as_str(),
            self.origin.as_str(),
            self.source_ip.as_str(),
            self.method.as_deref(),
            self.path.as_deref(),
            self.query.as_deref(),
            self.user_agent.as_deref(),
            headers,
            self.severity.as_str(),
            self.blocked,
            self.block_rule_id.as_deref(),
            self.block_error.as_deref(),
            self.reported_by.as_deref(),
            self.at.as_str()
        ]
    }
}

/// Store `record` and count it on its honeypot, atomically.
pub(crate) fn store(record: &Telemetry) -> Result<(), Problem> {
    let columns = db::stored_columns::<Telemetry>();
    let n = columns.split(", ").count();
    let values: Vec<String> = (1..=n).map(|i| format!("${i}")).collect();
    let insert =
        format!("INSERT INTO honeypot_telemetry ({columns}) VALUES ({})", values.join(", "));
    let count = "UPDATE honeypots SET hits = hits + 1, last_hit_at = $2 WHERE id = $1";
    db::batch(vec![
        db::statement(&insert, record.params()),
        db::statement(count, params![record.honeypot_id.as_str(), record.at.as_str()]),
    ])?;
    Ok(())
}

/// `text` cut to at most `max` characters.
pub(crate) fn clip(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// Does a header of this name look like it carries a secret?
pub(crate) fn is_secret(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_PARTS.iter().any(|part| name.contains(part))
}

/// The headers a record keeps: no secret-looking ones, names lower-case, a repeated header's
/// values joined with `, `, bounded in number and length.
pub(crate) fn kept_headers<'a>(
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> BTreeMap<String, String> {
    let mut kept: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        if is_secret(name) || name.is_empty() {
            continue;
        }
        let name = clip(&name.to_ascii_lowercase(), MAX_HEADER_NAME);
        let value: String = value.chars().filter(|c| !c.is_control()).collect();
        let full = kept.len() >= MAX_HEADERS;
        match kept.get_mut(&name) {
            Some(v) => {
                v.push_str(", ");
                v.push_str(&value);
                *v = clip(v, MAX_HEADER_VALUE);
            }
            None if !full => {
                kept.insert(name, clip(&value, MAX_HEADER_VALUE));
            }
            None => {}
        }
    }
    kept
}

/// An IP address in canonical form (an IPv4-mapped IPv6 address as IPv4), if it is one.
pub(crate) fn canonical_ip(text: &str) -> Option<String> {
    text.trim().parse::<IpAddr>().ok().map(|ip| ip.to_canonical().to_string())
}

/// `POST /system/security/honeypots/{id}/telemetry`: an external sensor's report of a hit.
#[derive(Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub(crate) struct Report {
    /// an IPv4 or IPv6 address
    #[validate(custom(function = ip_address))]
    #[schemars(extend("anyOf" = [{ "format": "ipv4" }, { "format": "ipv6" }]))]
    source_ip: String,
    #[serde(default)]
    #[validate(custom(function = http_method))]
    #[schemars(regex(pattern = "^[A-Za-z]{1,16}$"))]
    method: Option<String>,
    #[serde(default)]
    #[validate(length(max = MAX_REPORTED_PATH), custom(function = no_controls))]
    path: Option<String>,
    #[serde(default)]
    #[validate(length(max = MAX_USER_AGENT))]
    user_agent: Option<String>,
    /// header name → value (secret-looking headers are dropped)
    #[serde(default)]
    #[validate(custom(function = header_count))]
    headers: Option<BTreeMap<String, String>>,
    /// the honeypot's severity when absent
    #[serde(default)]
    #[validate(one_of = SEVERITIES)]
    severity: Option<String>,
}

fn ip_address(text: &str) -> Result<(), &'static str> {
    canonical_ip(text).map(|_| ()).ok_or("must be an IPv4 or IPv6 address")
}

fn http_method(text: &str) -> Result<(), &'static str> {
    let ok = (1..=16).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_alphabetic());
    if ok { Ok(()) } else { Err("must be an HTTP method such as GET") }
}

fn no_controls(text: &str) -> Result<(), &'static str> {
    if text.chars().any(char::is_control) {
        Err("must not contain control characters")
    } else {
        Ok(())
    }
}

fn header_count(headers: &BTreeMap<String, String>) -> Result<(), &'static str> {
    if headers.len() > MAX_HEADERS { Err("at most 64 headers") } else { Ok(()) }
}

/// A sensor's report becomes a record of the honeypot's. It never blocks the address it
/// names: a report is the claim of a `write` client, and blocking on a claim would let any
/// writer block any address; the decoys the host serves block what the host itself saw.
pub(crate) fn report(
    Path(id): Path<String>,
    Valid(body): Valid<Report>,
    Actor(actor): Actor,
) -> Result<Created<Telemetry>, Problem> {
    let honeypot: Honeypot = db::get("id", &id)?;
    if !honeypot.enabled {
        return Err(Problem::conflict(format!(
            "honeypot `{}` is disabled: it records nothing",
            honeypot.name
        )));
    }
    let record = Telemetry {
        id: clock::new_id(),
        honeypot_id: honeypot.id,
        origin: "sensor".into(),
        source_ip: canonical_ip(&body.source_ip).unwrap_or(body.source_ip),
        method: body.method.map(|m| m.to_ascii_uppercase()),
        path: body.path,
        query: None,
        user_agent: body.user_agent,
        headers: kept_headers(body.headers.iter().flatten().map(|(n, v)| (n.as_str(), v.as_str()))),
        severity: body.severity.unwrap_or(honeypot.severity),
        blocked: false,
        block_rule_id: None,
        block_error: None,
        reported_by: Some(actor),
        at: clock::now_rfc3339(),
    };
    store(&record)?;
    log::audit_created("honeypot.telemetry.report", &format!("honeypots/{id}"), &record);
    Ok(Created(record))
}

/// The list filters: `since` (RFC 3339), `source_ip`, `severity`, `origin`, and across all
/// honeypots `honeypot_id`; paged by `limit` and `cursor`.
#[derive(Deserialize, Validate)]
pub(crate) struct TelemetryQuery {
    #[validate(rfc3339)]
    since: Option<String>,
    #[validate(length(min = 1, max = 64))]
    source_ip: Option<String>,
    #[validate(one_of = SEVERITIES)]
    severity: Option<String>,
    #[validate(one_of = ORIGINS)]
    origin: Option<String>,
    #[validate(length(min = 1, max = 64))]
    honeypot_id: Option<String>,
}

fn list(
    honeypot_id: Option<String>,
    q: TelemetryQuery,
    page: db::CursorPage,
) -> Result<Json<db::CursorList<Telemetry>>, Problem> {
    let source_ip = q.source_ip.map(|ip| canonical_ip(&ip).unwrap_or(ip));
    let mut filter = db::Filter::new();
    filter
        .since("at", q.since.as_deref())?
        .eq("honeypot_id", honeypot_id)
        .eq("source_ip", source_ip)
        .eq("severity", q.severity)
        .eq("origin", q.origin);
    db::cursor_page::<Telemetry>(&filter, page)
}

/// `GET /system/security/telemetry`: every honeypot's, newest first.
pub(crate) fn list_all(
    page: db::CursorPage,
    ValidQuery(q): ValidQuery<TelemetryQuery>,
) -> Result<Json<db::CursorList<Telemetry>>, Problem> {
    let honeypot_id = q.honeypot_id.clone();
    list(honeypot_id, q, page)
}

/// `GET /system/security/honeypots/{id}/telemetry`: one honeypot's (404 if it is unknown).
pub(crate) fn list_one(
    Path(id): Path<String>,
    page: db::CursorPage,
    ValidQuery(q): ValidQuery<TelemetryQuery>,
) -> Result<Json<db::CursorList<Telemetry>>, Problem> {
    let honeypot: Honeypot = db::get("id", &id)?;
    list(Some(honeypot.id), q, page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_looking_headers_are_left_out() {
        let kept = kept_headers([
            ("user-agent", "curl/8"),
            ("X-Auth-Token", "t"),
            ("x-csrf-token", "t"),
            ("x-session-id", "s"),
            ("x-amz-security-key", "k"),
            ("set-cookie", "c"),
            ("proxy-authorization", "p"),
            ("x-client-secret", "s"),
            ("accept", "text/html"),
            ("accept", "*/*"),
            ("x-evil", "a\u{0}b"),
        ]);
        let names: Vec<&str> = kept.keys().map(String::as_str).collect();
        assert_eq!(names, ["accept", "user-agent", "x-evil"]);
        assert_eq!(kept["accept"], "text/html, */*");
        assert_eq!(kept["x-evil"], "ab", "control characters are dropped");
    }

    #[test]
    fn headers_are_bounded() {
        let names: Vec<String> = (0..100).map(|i| format!("x-h{i}")).collect();
        let long = "v".repeat(5000);
        let kept = kept_headers(names.iter().map(|n| (n.as_str(), long.as_str())));
        assert_eq!(kept.len(), MAX_HEADERS);
        assert!(kept.values().all(|v| v.chars().count() == MAX_HEADER_VALUE));
    }

    #[test]
    fn addresses_are_canonical() {
        assert_eq!(canonical_ip("::ffff:10.0.0.9").as_deref(), Some("10.0.0.9"));
        assert_eq!(canonical_ip("2001:DB8::1").as_deref(), Some("2001:db8::1"));
        assert_eq!(canonical_ip("10.0.0.256"), None);
        assert_eq!(canonical_ip(""), None);
    }

    #[test]
    fn a_report_is_checked_field_by_field() {
        let report: Report = serde_json::from_str(
            r#"{"source_ip": "nope", "method": "GET /", "severity": "meh", "path": "/a\u0001"}"#,
        )
        .unwrap();
        let fields: Vec<String> =
            Validator::of(&report).unwrap_err().errors.into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["source_ip", "method", "path", "severity"]);
        let ok: Report = serde_json::from_str(r#"{"source_ip": "203.0.113.7"}"#).unwrap();
        assert!(Validator::of(&ok).is_ok());
    }

    #[test]
    fn a_record_has_a_parameter_per_column() {
        let record = Telemetry {
            id: "i".into(),
            honeypot_id: "h".into(),
            origin: "decoy".into(),
            source_ip: "10.0.0.1".into(),
            method: None,
            path: None,
            query: None,
            user_agent: None,
            headers: BTreeMap::new(),
            severity: "high".into(),
            blocked: false,
            block_rule_id: None,
            block_error: None,
            reported_by: None,
            at: "t".into(),
        };
        assert_eq!(record.params().len(), db::stored_columns::<Telemetry>().split(", ").count());
    }
}
