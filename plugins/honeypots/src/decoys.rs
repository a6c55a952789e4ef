//! The decoys: the host sends the pack every request no route matches (its fallback); a path
//! of an enabled honeypot is a hit, recorded (and, with `auto_block`, its source blocked
//! through security_policy), and every request gets the host's own 404, so a scanner cannot
//! tell a decoy from any other missing page. The enabled decoy paths are cached, so a plain
//! 404 reads no database; every write of a honeypot drops the cache ([`changed`]).

use valhalla_sdk::Method::Post;
use valhalla_sdk::prelude::*;

use crate::settings::Settings;
use crate::telemetry::{self, MAX_QUERY, MAX_USER_AGENT, Telemetry, canonical_ip, clip};

/// The cache entry of the enabled decoys.
const DECOYS: &str = "decoys";
/// Bounds how long another replica serves a changed decoy set (writes here drop it at once).
const DECOYS_TTL_MS: u64 = 30_000;
const BLOCKLIST: &str = "/system/security/blocklist";
/// The window of the per-source record cap (`max_records_per_minute`).
const RECORD_WINDOW_MS: u64 = 60_000;

/// What the fallback needs of an enabled honeypot.
#[derive(Serialize, Deserialize, Clone)]
pub(crate) struct Decoy {
    id: String,
    name: String,
    path: String,
    severity: String,
    auto_block: bool,
}

/// After a write of any honeypot: the next request reads the decoys afresh.
pub(crate) fn changed() {
    cache::invalidate(DECOYS);
}

/// The enabled decoys, from the cache when they are there.
fn enabled() -> Result<Vec<Decoy>, Problem> {
    let load = || {
        let sql = "SELECT id, name, path, severity, auto_block FROM honeypots WHERE enabled = $1";
        db::query_as::<Decoy>(sql, params![true]).map(Some)
    };
    Ok(cache::read_through(DECOYS, DECOYS_TTL_MS, load)?.unwrap_or_default())
}

/// The fallback: every request no route matches. A decoy's hit is recorded; the answer is
/// always the host's 404, whatever happens while recording (which only the log hears of).
pub(crate) fn serve(req: Request) -> Result<Response, Problem> {
    match enabled() {
        Ok(decoys) => {
            if let Some(decoy) = decoys.iter().find(|d| d.path == req.path()) {
                hit(&req, decoy);
            }
        }
        Err(p) => log::error(&format!("honeypots: the decoys could not be read: {}", p.detail)),
    }
    Err(Problem::not_found(format!("no route for {}", req.path())))
}

/// Record a hit on `decoy`, blocking its source first when the honeypot says so; past
/// `max_records_per_minute` of this source on this decoy, nothing more this minute.
fn hit(req: &Request, decoy: &Decoy) {
    let settings = Settings::load();
    let method = valhalla_sdk::pack::method_name(req.method());
    let source_ip = canonical_ip(req.client_ip()).unwrap_or_else(|| req.client_ip().to_string());
    if !within_cap(decoy, &source_ip, settings.max_records_per_minute) {
        return;
    }
    let blocked = if decoy.auto_block {
        block(&source_ip, decoy, method, settings.block_duration_seconds)
    } else {
        Block::default()
    };
    let query = encode_query(req.query_pairs());
    let headers = req.headers();
    let record = Telemetry {
        id: clock::new_id(),
        honeypot_id: decoy.id.clone(),
        origin: "decoy".into(),
        source_ip,
        method: Some(method.into()),
        path: Some(req.path().into()),
        query: Some(clip(&query, MAX_QUERY)).filter(|q| !q.is_empty()),
        user_agent: req.header("user-agent").map(|ua| clip(ua, MAX_USER_AGENT)),
        headers: telemetry::kept_headers(headers),
        severity: decoy.severity.clone(),
        blocked: blocked.rule_id.is_some(),
        block_rule_id: blocked.rule_id,
        block_error: blocked.error,
        reported_by: None,
        at: clock::now_rfc3339(),
    };
    let outcome = if record.blocked { "blocked" } else { "not blocked" };
    log::warn(&format!(
        "honeypot `{}` hit: {method} {} from {} ({outcome})",
        decoy.name, decoy.path, record.source_ip
    ));
    if let Err(p) = telemetry::store(&record) {
        log::error(&format!("honeypots: a hit on `{}` was not recorded: {}", decoy.name, p.detail));
    }
}

/// Is this hit among the first `max` of `source_ip` on `decoy` this minute? (Without the
/// counter, it is: a hit is rather recorded than lost.)
fn within_cap(decoy: &Decoy, source_ip: &str, max: i64) -> bool {
    let key = format!("recorded:{}:{source_ip}", decoy.id);
    let Some(counter) = cache::incr(&key, 1, RECORD_WINDOW_MS) else {
        return true;
    };
    if counter.value == max + 1 {
        log::warn(&format!(
            "honeypot `{}`: {source_ip} hit it {max} times this minute; its further hits are \
             answered, not recorded, for {} s",
            decoy.name,
            counter.reset_ms.div_ceil(1000)
        ));
    }
    counter.value <= max
}

/// What asking for a block came to: the rule made, or why there is none.
#[derive(Default)]
struct Block {
    rule_id: Option<String>,
    error: Option<String>,
}

/// Put `ip` on security_policy's blocklist for `seconds`.
fn block(ip: &str, decoy: &Decoy, method: &str, seconds: i64) -> Block {
    if canonical_ip(ip).is_none() {
        return Block { rule_id: None, error: Some("the source address is unknown".into()) };
    }
    let rule = serde_json::json!({
        "rule_type": "ip",
        "value": ip,
        "duration_seconds": seconds,
        "severity": decoy.severity,
        "reason": format!("honeypot `{}` hit: {method} {}", decoy.name, decoy.path),
    });
    let error = match packs::call("security_policy", Post, BLOCKLIST, &[], Some(&rule)) {
        Ok(answer) if answer.ok() => match answer.json()["id"].as_str() {
            Some(id) => return Block { rule_id: Some(id.into()), error: None },
            None => "security_policy answered a rule without an id".to_string(),
        },
        Ok(answer) => format!("security_policy answered {}: {}", answer.status, answer.failure()),
        Err(e) => format!("security_policy: {}", capability::message(&e)),
    };
    log::warn(&format!("honeypots: {ip} was not blocked: {error}"));
    Block { rule_id: None, error: Some(error) }
}

/// The query pairs as `a=1&b=2`, percent-encoding what would make it ambiguous.
fn encode_query(pairs: &[(String, String)]) -> String {
    let encode = |s: &str| {
        let mut out = String::new();
        for c in s.chars() {
            if c.is_control() || c.is_whitespace() || matches!(c, '&' | '=' | '%' | '+' | '#') {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("%{b:02X}"));
                }
            } else {
                out.push(c);
            }
        }
        out
    };
    let parts: Vec<String> =
        pairs.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect();
    parts.join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_read_back_unambiguously() {
        let pairs = |items: &[(&str, &str)]| -> Vec<(String, String)> {
            items.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string())).collect()
        };
        assert_eq!(encode_query(&pairs(&[("a", "1"), ("b", "x y")])), "a=1&b=x%20y");
        assert_eq!(encode_query(&pairs(&[("q", "a&b=c%")])), "q=a%26b%3Dc%25");
        assert_eq!(encode_query(&pairs(&[("é", "\n")])), "é=%0A");
        assert_eq!(encode_query(&[]), "");
    }
}
