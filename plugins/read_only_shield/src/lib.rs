//! read_only_shield (pack UJ): while the maintenance mode is not `normal`, writes get 503 with
//! `Retry-After`. It sees only writes (the host skips it for reads without instantiating it);
//! the maintenance endpoints and admin operations stay open to admins, so an operator can
//! always switch back.

#![cfg_attr(not(test), no_std)]

use valhalla_sdk::prelude::*;
use valhalla_sdk::problem::Kind;

fn pack() -> Pack {
    let writes = vec![Method::Post, Method::Put, Method::Patch, Method::Delete];
    Pack::new("read_only_shield", env!("CARGO_PKG_VERSION"), "Refuses writes outside normal mode")
        .guard(GuardSpec { order: 30, methods: writes, ..GuardSpec::default() }, shield)
}

valhalla_sdk::export_pack!(pack);

/// Retry-After when the mode has no known end.
const DEFAULT_RETRY_SECONDS: i64 = 60;

fn shield(req: &Request) -> Result<guard::Decision, Problem> {
    let operator_path =
        req.path().starts_with("/system/maintenance") || req.path().starts_with("/admin/");
    if operator_path && req.has_role("admin") {
        return Ok(guard::proceed());
    }
    // the maintenance pack's state is free-form JSON: what is not there reads as normal
    let state = match packs::get("maintenance", "/system/maintenance/state") {
        Ok(answer) if answer.ok() => answer.json(),
        // no maintenance pack, no maintenance mode
        Err(capability::Error::Unavailable(m)) if m.contains("not enabled") => {
            return Ok(guard::proceed());
        }
        // the mode cannot be known: refuse writes rather than risk them
        Ok(_) | Err(_) => {
            let detail = "the maintenance state cannot be read; writes are refused for now";
            return Ok(guard::refuse(req, Problem::unavailable(detail), [("retry-after", "5")]));
        }
    };
    let mode = state["mode"].as_str().unwrap_or("normal");
    if mode == "normal" {
        return Ok(guard::proceed());
    }
    let retry = state["until"]
        .as_str()
        .and_then(clock::parse_rfc3339)
        .map_or(DEFAULT_RETRY_SECONDS, |until| ((until - clock::now_ms()) / 1000).max(1));
    let reason = state["reason"].as_str().map(|r| format!(": {r}")).unwrap_or_default();
    let detail = format!("the service is in {mode} mode and refuses writes{reason}");
    let retry_after = [("retry-after", retry.to_string())];
    Ok(guard::refuse(req, Problem::of(Kind::ReadOnly, detail), retry_after))
}
