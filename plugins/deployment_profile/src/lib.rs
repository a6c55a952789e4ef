//! deployment_profile (pack UB): what is deployed (environment, version, build, uptime, packs)
//! and a smoke test of a deployment's health and route index, through granted outbound HTTP.

#![cfg_attr(not(test), no_std)]

use valhalla_sdk::capability::Error as CapabilityError;
use valhalla_sdk::prelude::*;

fn pack() -> Pack {
    Pack::new("deployment_profile", env!("CARGO_PKG_VERSION"), "Deployment profile and smoke tests")
        .get("/system/deploy/profile", Access::Read, "What is deployed", profile)
        .get("/system/deploy/smoke", Access::Write, "Smoke-test a deployment", smoke)
}

valhalla_sdk::export_pack!(pack);

/// The endpoints a smoke test calls, in order, and whether each needs a credential. The run
/// sends none (a caller's credential never goes to an outbound URL): a protected endpoint's
/// 401 proves the deployment's route table and access check answer, and counts as reachable
/// (`auth_required` in its result).
const SMOKE_ENDPOINTS: [(&str, bool); 3] =
    [("/system/health/live", false), ("/system/health/ready", false), ("/debug/routes", true)];
const SMOKE_TIMEOUT_MS: u32 = 5_000;

#[derive(Deserialize)]
struct Settings {
    /// The environment when a request names none.
    environment: Option<String>,
}

/// `?environment=…` (both routes) and `?base_url=…` (the smoke test).
#[derive(Deserialize)]
struct Params {
    environment: Option<String>,
    base_url: Option<String>,
}

/// The host's build information, as far as the profile shows it.
#[derive(Deserialize, Default)]
struct BuildInfo {
    version: Option<String>,
    started_at_ms: Option<i64>,
    #[serde(flatten)]
    build: Build,
}

#[derive(Serialize, Deserialize, JsonSchema, Default)]
struct Build {
    git_commit: Option<String>,
    rustc: Option<String>,
}

/// `GET /system/deploy/profile`.
#[derive(Serialize, JsonSchema)]
struct Profile {
    environment: String,
    version: Option<String>,
    build: Build,
    timestamp: String,
    started_at: String,
    uptime_seconds: i64,
    packs: Vec<PackOut>,
}

#[derive(Serialize, JsonSchema)]
struct PackOut {
    name: String,
    version: String,
}

/// `GET /system/deploy/smoke`: one result per endpoint.
#[derive(Serialize, JsonSchema)]
struct Smoke {
    environment: String,
    base_url: String,
    timestamp: String,
    results: Vec<SmokeResult>,
    all_ok: bool,
}

#[derive(Serialize, JsonSchema)]
struct SmokeResult {
    endpoint: &'static str,
    ok: bool,
    /// `null` when no answer came
    status: Option<u16>,
    error: Option<String>,
    duration_ms: i64,
    /// the endpoint answered 401 for want of a credential: it is up and protected
    auth_required: bool,
}

/// The environment asked for, else the configured one, else `development`.
fn environment(asked: Option<String>) -> Result<String, Problem> {
    let env = match asked {
        Some(e) => e,
        None => host::settings::<Settings>()?.environment.unwrap_or_else(|| "development".into()),
    };
    Validator::run(|v| v.identifier("environment", &env, 64))?;
    Ok(env)
}

fn profile(Query(params): Query<Params>) -> Result<Json<Profile>, Problem> {
    let environment = environment(params.environment)?;
    let info: BuildInfo = serde_json::from_value(host::build_info()).unwrap_or_default();
    let now = clock::now_ms();
    let started_ms = info.started_at_ms.unwrap_or(now);
    let packs = host::packs().into_iter().map(|p| PackOut { name: p.name, version: p.version });
    Ok(Json(Profile {
        environment,
        version: info.version,
        build: info.build,
        timestamp: clock::rfc3339(now),
        started_at: clock::rfc3339(started_ms),
        uptime_seconds: (now - started_ms).max(0) / 1000,
        packs: packs.collect(),
    }))
}

/// `http(s)://host[:port]` without path, query or fragment; trailing slash dropped.
fn base_url(raw: Option<&str>) -> Result<String, Problem> {
    let raw = raw.ok_or_else(|| {
        Problem::invalid_field("base_url", "required, e.g. http://127.0.0.1:8000")
    })?;
    let trimmed = raw.trim_end_matches('/');
    let authority = trimmed.strip_prefix("http://").or_else(|| trimmed.strip_prefix("https://"));
    match authority {
        Some(a) if !a.is_empty() && !a.contains(['/', '?', '#', '@', ' ']) => Ok(trimmed.into()),
        _ => {
            Err(Problem::invalid_field("base_url", "must be http(s)://host[:port] without a path"))
        }
    }
}

/// `GET base endpoint`; only an ungranted base is a failure of the whole smoke test.
fn check(base: &str, (endpoint, protected): (&'static str, bool)) -> Result<SmokeResult, Problem> {
    let started = clock::now_ms();
    let outcome = outbound::get(&format!("{base}{endpoint}"), SMOKE_TIMEOUT_MS);
    let duration_ms = clock::now_ms() - started;
    let auth_required = protected && matches!(&outcome, Ok(r) if r.status == 401);
    let (status, error) = match outcome {
        Ok(r) if (200..300).contains(&r.status) || auth_required => (Some(r.status), None),
        Ok(r) => (Some(r.status), Some(format!("status {}", r.status))),
        Err(CapabilityError::AccessDenied(_)) => {
            return Err(Problem::forbidden(format!(
                "base_url `{base}` is not in this pack's grants.outbound in config.toml"
            )));
        }
        Err(e) => (None, Some(capability::message(&e).to_string())),
    };
    Ok(SmokeResult { endpoint, ok: error.is_none(), status, error, duration_ms, auth_required })
}

fn smoke(Query(params): Query<Params>) -> Result<Json<Smoke>, Problem> {
    let environment = environment(params.environment)?;
    let base_url = base_url(params.base_url.as_deref())?;
    let results: Vec<_> =
        SMOKE_ENDPOINTS.into_iter().map(|e| check(&base_url, e)).collect::<Result<_, _>>()?;
    let all_ok = results.iter().all(|r| r.ok);
    let after = serde_json::json!({ "base_url": base_url, "all_ok": all_ok });
    log::audit_created("deploy.smoke", &format!("deployment_profile/{environment}"), &after);
    Ok(Json(Smoke { environment, base_url, timestamp: clock::now_rfc3339(), results, all_ok }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_scheme_and_authority_only() {
        assert_eq!(base_url(Some("http://localhost:8000/")).unwrap(), "http://localhost:8000");
        assert_eq!(base_url(Some("https://example.org")).unwrap(), "https://example.org");
        for bad in
            [None, Some("localhost:8000"), Some("http://x/path"), Some("ftp://x"), Some("http://")]
        {
            assert_eq!(base_url(bad).unwrap_err().errors[0].field, "base_url", "{bad:?}");
        }
    }
}
