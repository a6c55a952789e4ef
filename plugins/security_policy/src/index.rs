//! The guard's index of the live rules in the host cache: one entry per lookup key
//! (`ip:1.2.3.4`, `net:v4:16:10.1.0.0`, `user:alice`, `client:<id>`) plus a `meta` entry with
//! the prefix lengths in use, so a lookup costs one cache read per key an address can have —
//! flat in the number of rules, never a scan. A deletion or a policy change moves the index
//! to a new generation; an added rule is read from the database by its keys until the index
//! holds it. The pack's tick (every second, with the tick's longer deadline, on every replica:
//! the index lives in each one's cache) builds the index; a request never does, so no request
//! waits on 10 000 rules being indexed.
//!
//! Replicas on one database hear of each other's changes through the cache's invalidations
//! (deletes reach every replica): a deletion drops every replica's index (`bl:`), an addition
//! drops the `bl:fresh` mark (each replica then reads its requests' keys from the database
//! until its next build) and `bl:memo` (the decisions the hosts memoized).

use core::net::IpAddr;

use valhalla_sdk::prelude::*;

use crate::keys::request_keys;

/// The index's generation counter (this replica's); every change but an added rule adds 1.
const GENERATION: &str = "bl-generation";
/// Present while no rule was added since the index was built (a build writes it before it
/// reads the rules; an addition anywhere deletes it).
const FRESH: &str = "bl:fresh";
/// What the hosts' memoized decisions stay valid with: an addition anywhere deletes it.
const MEMO: &str = "bl:memo";
/// Practically forever.
const FOREVER_MS: u64 = 10 * 365 * 86_400_000;
/// A built index lives this long; the tick rebuilds it a minute before, and its entries live
/// a minute longer, so while `meta` is there, they are.
const META_TTL_MS: u64 = 10 * 60_000;
const ENTRY_TTL_MS: u64 = META_TTL_MS + 60_000;
const REFRESH_AFTER_MS: i64 = (META_TTL_MS - 60_000) as i64;
/// Rules added since the index was built are read from the database (by their keys, an
/// indexed read) until the next tick rebuilds it with them.
pub(crate) const TICK_MS: u64 = 1_000;

/// A live rule as the guard needs it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Entry {
    pub id: String,
    pub policy_id: Option<String>,
    /// an enforcing policy's (or a standalone) rule blocks; a monitoring one only records
    pub enforce: bool,
    pub expires_ms: Option<i64>,
}

impl Entry {
    pub fn live_at(&self, now_ms: i64) -> bool {
        self.expires_ms.is_none_or(|t| t > now_ms)
    }
}

/// What the index holds besides its entries.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Meta {
    /// the prefix lengths of the live cidr rules, per family
    v4_lens: Vec<u8>,
    v6_lens: Vec<u8>,
    /// every entry made it into the cache (a full cache skips new entries); when not, the
    /// guard asks the database instead
    complete: bool,
    /// when it was built
    built_ms: i64,
}

impl Meta {
    /// The prefix lengths in use: IPv4's, IPv6's.
    fn lens(&self) -> (&[u8], &[u8]) {
        (&self.v4_lens, &self.v6_lens)
    }

    /// Should the tick rebuild this index (`fresh`: no rule was added since it was built)?
    fn stale(&self, fresh: bool, now_ms: i64) -> bool {
        !fresh || now_ms - self.built_ms >= REFRESH_AFTER_MS
    }
}

fn counter(key: &str, delta: i64) -> Option<i64> {
    cache::incr(key, delta, FOREVER_MS).map(|c| c.value)
}

/// The index is stale (a rule deleted, a policy changed): the next request builds a new
/// generation.
pub(crate) fn invalidate() {
    if counter(GENERATION, 1).is_none() {
        log::warn("blocklist: the index generation could not move on; dropping every entry");
    }
    cache::delete_prefix("bl:");
}

/// A rule was added: every replica reads its requests' keys from the database (at every
/// prefix length) until its next build, and the decisions the hosts memoized are dropped.
pub(crate) fn added() {
    cache::delete(FRESH);
    cache::delete(MEMO);
}

fn prefix() -> String {
    format!("bl:{}:", counter(GENERATION, 0).unwrap_or(0))
}

/// A live rule row as the index is built from.
#[derive(Deserialize)]
struct Live {
    id: String,
    policy_id: Option<String>,
    lookup_key: String,
    expires_at: Option<String>,
    mode: Option<String>,
}

impl Live {
    fn entry(self) -> (String, Entry) {
        let entry = Entry {
            id: self.id,
            policy_id: self.policy_id,
            enforce: self.mode.as_deref() != Some("monitor"),
            expires_ms: self.expires_at.as_deref().and_then(clock::parse_rfc3339),
        };
        (self.lookup_key, entry)
    }
}

/// The SQL of the live rules: active, unexpired, of enabled policies (or standalone).
const LIVE: &str = "SELECT r.id, r.policy_id, r.lookup_key, r.expires_at, p.mode \
     FROM blocklist_rules r LEFT JOIN security_policies p ON p.id = r.policy_id \
     WHERE r.active = $1 AND (r.policy_id IS NULL OR p.enabled = $1) \
     AND (r.expires_at IS NULL OR r.expires_at > $2)";

/// The live rules under `keys` (an indexed read).
fn live_rules(keys: &[String]) -> Result<Vec<(String, Entry)>, Problem> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let marks: Vec<String> = (0..keys.len()).map(|i| format!("${}", i + 3)).collect();
    let sql = format!("{LIVE} AND r.lookup_key IN ({}) ORDER BY r.id", marks.join(", "));
    let mut params = params![true, clock::now_rfc3339()];
    params.extend(keys.iter().map(|k| db::ToValue::to_value(&k.as_str())));
    Ok(db::query_as::<Live>(&sql, params)?.into_iter().map(Live::entry).collect())
}

/// Rules read per query while building: the build's memory stays this small however many
/// rules there are. A pack instance that grew large makes its pool slot costlier to reset
/// for every instance after it: with pages of 500, a server with 10 000 rules spent twice a
/// 20-rule server's time resetting slots (memset after each request); with 100, the same.
const BUILD_PAGE: i64 = 100;

/// One page of the live rules in `(lookup_key, id)` order, after `after`.
fn live_page(after: Option<&(String, String)>) -> Result<Vec<(String, Entry)>, Problem> {
    let mut params = params![true, clock::now_rfc3339()];
    let mut sql = String::from(LIVE);
    if let Some((key, id)) = after {
        sql.push_str(" AND (r.lookup_key > $3 OR (r.lookup_key = $3 AND r.id > $4))");
        params.extend(params![key.as_str(), id.as_str()]);
    }
    let n = params.len() + 1;
    sql.push_str(&format!(" ORDER BY r.lookup_key, r.id LIMIT ${n}"));
    params.extend(params![BUILD_PAGE]);
    Ok(db::query_as::<Live>(&sql, params)?.into_iter().map(Live::entry).collect())
}

/// Build generation `prefix` of the index from the database, a page at a time: each key's
/// rules are cached as soon as the next key comes.
fn build(prefix: &str) -> Result<Meta, Problem> {
    // before the rules are read: an addition after this point deletes it again
    cache::set_json(FRESH, &0u8, None);
    let mut meta = Meta { complete: true, built_ms: clock::now_ms(), ..Meta::default() };
    let mut current: Option<(String, Vec<Entry>)> = None;
    let flush = |meta: &mut Meta, (key, entries): (String, Vec<Entry>)| {
        let mut parts = key.splitn(4, ':');
        if let (Some("net"), Some(fam), Some(len)) = (parts.next(), parts.next(), parts.next()) {
            let lens = if fam == "v4" { &mut meta.v4_lens } else { &mut meta.v6_lens };
            if let Ok(len) = len.parse::<u8>()
                && !lens.contains(&len)
            {
                lens.push(len);
            }
        }
        let cached = format!("{prefix}{key}");
        cache::set_json(&cached, &entries, Some(ENTRY_TTL_MS));
        // a full cache skips new entries without saying so: check each is there
        meta.complete &= cache::has(&cached);
    };
    let mut after = None;
    loop {
        let page = live_page(after.as_ref())?;
        let last = page.len() < BUILD_PAGE as usize;
        after = page.last().map(|(key, e)| (key.clone(), e.id.clone()));
        for (key, entry) in page {
            match &mut current {
                Some((k, entries)) if *k == key => entries.push(entry),
                _ => {
                    if let Some(done) = current.replace((key, alloc::vec![entry])) {
                        flush(&mut meta, done);
                    }
                }
            }
        }
        if last {
            break;
        }
    }
    if let Some(done) = current.take() {
        flush(&mut meta, done);
    }
    for lens in [&mut meta.v4_lens, &mut meta.v6_lens] {
        lens.sort_unstable();
    }
    if !meta.complete {
        log::warn("blocklist: the host cache is full; the guard reads the database instead");
    }
    if format!("bl:{}:", counter(GENERATION, 0).unwrap_or(0)) != prefix || !cache::has(FRESH) {
        // the rules changed while this was built (a deletion may have gone by unseen, on
        // another replica): nobody reads it; the next tick builds again
        cache::delete_prefix(prefix);
        return Ok(meta);
    }
    cache::set_json(&format!("{prefix}meta"), &meta, Some(META_TTL_MS));
    Ok(meta)
}

/// The tick: build the index when it is missing, holds fewer rules than were added, or is
/// about to lapse. Answers what it did.
pub(crate) fn refresh() -> Result<String, String> {
    let prefix = prefix();
    let meta = cache::get_json::<Meta>(&format!("{prefix}meta"));
    if meta.as_ref().is_some_and(|m| !m.stale(cache::has(FRESH), clock::now_ms())) {
        return Ok(String::new());
    }
    let built = build(&prefix).map_err(|p| p.detail)?;
    Ok(format!(
        "blocklist index built ({} v4, {} v6 prefix lengths)",
        built.v4_lens.len(),
        built.v6_lens.len()
    ))
}

/// What a lookup found: the rules a request matches (live or expired since they were
/// indexed), and the cache entry the answer stays valid with (for the guard's memo).
pub(crate) struct Found {
    pub rules: Vec<Entry>,
    pub valid_while: String,
}

/// The rules a request from `ip` as `principal` matches.
pub(crate) fn lookup(ip: Option<IpAddr>, principal: Option<&str>) -> Result<Found, Problem> {
    let prefix = prefix();
    // read first: a rule added after this read drops the memo made from it
    let valid_while = String::from(MEMO);
    if !cache::has(&valid_while) {
        cache::set_json(&valid_while, &0u8, Some(ENTRY_TTL_MS));
    }
    let fresh = cache::has(FRESH);
    let (v4, v6): (Vec<u8>, Vec<u8>) = ((0..=32).collect(), (0..=128).collect());
    let every_length = (v4.as_slice(), v6.as_slice());
    let Some(meta) = cache::get_json::<Meta>(&format!("{prefix}meta")) else {
        // no index yet (the tick builds it): ask the database, at every prefix length
        let keys = request_keys("", every_length, ip, principal);
        let rules = live_rules(&keys)?.into_iter().map(|(_, e)| e).collect();
        return Ok(Found { rules, valid_while });
    };
    let mut rules: Vec<Entry> = if meta.complete {
        let cached = request_keys(&prefix, meta.lens(), ip, principal);
        cache::get_many_json::<Vec<Entry>>(&cached).into_iter().flatten().flatten().collect()
    } else {
        Vec::new()
    };
    if !meta.complete || !fresh {
        // rules the index does not hold yet (or cannot): from the database, by their keys at
        // every prefix length (an added network may be of a length the index does not have)
        let keys = request_keys("", every_length, ip, principal);
        for (_, entry) in live_rules(&keys)? {
            if !rules.iter().any(|r| r.id == entry.id) {
                rules.push(entry);
            }
        }
    }
    Ok(Found { rules, valid_while })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_is_rebuilt_after_an_addition_or_before_it_lapses() {
        let meta = Meta { built_ms: 5_000, ..Meta::default() };
        assert!(!meta.stale(true, 5_000 + REFRESH_AFTER_MS - 1));
        assert!(meta.stale(true, 5_000 + REFRESH_AFTER_MS));
        assert!(meta.stale(false, 5_001));
    }

    #[test]
    fn expiry_is_checked_at_lookup() {
        let e = Entry { id: "r".into(), policy_id: None, enforce: true, expires_ms: Some(10) };
        assert!(e.live_at(9));
        assert!(!e.live_at(10));
        assert!(Entry { expires_ms: None, ..e }.live_at(i64::MAX));
    }
}
