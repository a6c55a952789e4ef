//! deployment_profile (pack UB): what is deployed (environment, version, build, uptime, packs)
//! and a smoke test of a deployment's health and route index, through granted outbound HTTP.

#![cfg_attr(not(test), no_std)]

use valhalla_sdk::capability::Error as CapabilityError;
use valhalla_sdk::prelude::*;

fn pack() -> Pack {
    Pack::new(
        "deployment_profile",
        env!("CARGO_PKG_VERSION"),
        "Deployment profile and smoke tests",
    )
    .get(
        "/system/deploy/profile",
        Access::Read,
        "What is deployed",
        profile,
    )
    .get(
        "/system/deploy/smoke",
        Access::Write,
        "Smoke-test a deployment",
        smoke,
    )
}

valhalla_sdk::export_pack!(pack);

/// The endpoints a smoke test calls, in order.
const SMOKE_ENDPOINTS: [&str; 3] = [
    "/system/health/live",
    "/system/health/ready",
    "/debug/routes",
];
const SMOKE_TIMEOUT_MS: u32 = 5_000;

#[derive(Deserialize, Default)]
#[serde(default)]
struct Settings {
    /// The environment when a request names none.
    environment: Option<String>,
}

fn environment(req: &Request) -> Result<String, Problem> {
    let env = match req.query("environment") {
        Some(e) => e.to_string(),
        None => host::settings::<Settings>()?
            .environment
            .unwrap_or_else(|| "development".into()),
    };
    let mut v = Validator::default();
    v.identifier("environment", &env, 64);
    v.finish()?;
    Ok(env)
}

fn profile(req: &Request) -> Result<Response, Problem> {
    let environment = environment(req)?;
    let build = host::build_info();
    let now = clock::now_ms();
    let started_ms = build["started_at_ms"].as_i64().unwrap_or(now);
    let packs: Vec<_> = host::packs()
        .into_iter()
        .map(|p| serde_json::json!({ "name": p.name, "version": p.version }))
        .collect();
    Response::ok(&serde_json::json!({
        "environment": environment,
        "version": build["version"],
        "build": {
            "git_commit": build["git_commit"],
            "rustc": build["rustc"],
        },
        "timestamp": clock::rfc3339(now),
        "started_at": clock::rfc3339(started_ms),
        "uptime_seconds": (now - started_ms).max(0) / 1000,
        "packs": packs,
    }))
}

#[derive(Serialize)]
struct SmokeResult {
    endpoint: &'static str,
    ok: bool,
    status: Option<u16>,
    error: Option<String>,
    duration_ms: i64,
}

/// `http(s)://host[:port]` without path, query or fragment; trailing slash dropped.
fn base_url(req: &Request) -> Result<String, Problem> {
    let raw = req.query("base_url").ok_or_else(|| {
        Problem::invalid_field("base_url", "required, e.g. http://127.0.0.1:8000")
    })?;
    let trimmed = raw.trim_end_matches('/');
    let rest = trimmed
        .strip_prefix("http://")
        .or_else(|| trimmed.strip_prefix("https://"));
    match rest {
        Some(authority)
            if !authority.is_empty() && !authority.contains(['/', '?', '#', '@', ' ']) =>
        {
            Ok(trimmed.to_string())
        }
        _ => Err(Problem::invalid_field(
            "base_url",
            "must be http(s)://host[:port] without a path",
        )),
    }
}

fn smoke(req: &Request) -> Result<Response, Problem> {
    let environment = environment(req)?;
    let base = base_url(req)?;
    let mut results = Vec::with_capacity(SMOKE_ENDPOINTS.len());
    for endpoint in SMOKE_ENDPOINTS {
        let started = clock::now_ms();
        let outcome = outbound::get(&format!("{base}{endpoint}"), SMOKE_TIMEOUT_MS);
        let duration_ms = clock::now_ms() - started;
        let result = match outcome {
            Ok(r) => SmokeResult {
                endpoint,
                ok: (200..300).contains(&r.status),
                status: Some(r.status),
                error: (!(200..300).contains(&r.status)).then(|| format!("status {}", r.status)),
                duration_ms,
            },
            Err(CapabilityError::AccessDenied(_)) => {
                return Err(Problem::forbidden(format!(
                    "base_url `{base}` is not in this pack's grants.outbound in config.toml"
                )));
            }
            Err(e) => SmokeResult {
                endpoint,
                ok: false,
                status: None,
                error: Some(capability::message(&e).to_string()),
                duration_ms,
            },
        };
        results.push(result);
    }
    let all_ok = results.iter().all(|r| r.ok);
    log::audit::<(), _>(
        "deploy.smoke",
        &format!("deployment_profile/{environment}"),
        None,
        Some(&serde_json::json!({ "base_url": base, "all_ok": all_ok })),
    );
    Response::ok(&serde_json::json!({
        "environment": environment,
        "base_url": base,
        "timestamp": clock::now_rfc3339(),
        "results": results,
        "all_ok": all_ok,
    }))
}
