//! The blocklist guard: a request whose client address, principal or API client matches a
//! live rule of an enabled enforcing policy (or a standalone rule) gets 403 naming the rule;
//! a monitoring policy's match is only recorded. A request that matches nothing is
//! memoized by the host until the rules change.

use valhalla_sdk::guard::MemoInput;
use valhalla_sdk::prelude::*;

use crate::hits;
use crate::index::{self, Entry};
use crate::settings::Settings;
use crate::values::{canonical_ip, in_any};

pub(crate) fn check(req: &Request) -> Result<guard::Decision, Problem> {
    // probes stay answerable (and a memo made here would hold for every path)
    if req.path().starts_with("/system/health") {
        return Ok(guard::proceed());
    }
    let never = Settings::load()?.never_block()?;
    // an address the settings never block is not looked up by address at all
    let ip = canonical_ip(req.client_ip()).filter(|ip| !in_any(*ip, &never));
    let principal = req.principal().map(|p| p.id.as_str());
    let found = index::lookup(ip, principal)?;
    let now = clock::now_ms();
    let live: Vec<&Entry> = found.rules.iter().filter(|e| e.live_at(now)).collect();
    if live.is_empty() {
        // until the rules change, nothing blocks this address and principal
        guard::memoize(Some(&found.valid_while), &[MemoInput::Principal, MemoInput::ClientIp]);
        return Ok(guard::proceed());
    }
    let blocking = live.iter().find(|e| e.enforce);
    for rule in &live {
        hits::record(rule, req, blocking.is_some());
    }
    match blocking {
        Some(rule) => {
            let problem = Problem::forbidden(format!(
                "the request is blocked by the security blocklist (rule {})",
                rule.id
            ));
            Ok(guard::refuse(req, problem, core::iter::empty::<(&str, &str)>()))
        }
        None => Ok(guard::proceed()),
    }
}
