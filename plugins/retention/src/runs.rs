//! The tick: claim the categories that are due (each policy row is its category's lease:
//! `jobs::claim`, so two replicas never purge one category at once, and a replica that died
//! mid-run leaves a lease that lapses), purge each through its owning pack in batches until a
//! call removes fewer than the batch (or the tick's time budget is spent: the next tick goes
//! on), record the run in `retention_runs` and the system log, and finish the claim with the
//! next run's time. An owning pack that is disabled or absent is the run's `error`.

use valhalla_sdk::bindings::valhalla::pack::log::Level;
use valhalla_sdk::bindings::valhalla::pack::types::Error as CallError;
use valhalla_sdk::db::ToValue;
use valhalla_sdk::prelude::*;

use crate::categories::{self, CATEGORIES, Category};
use crate::policies::Policy;
use crate::settings::Settings;

const DAY_MS: i64 = 86_400_000;

/// Each policy row is its category's lease. Longer than a tick may run (the host's tick
/// deadline, 30 s by default), so no live claimer outlives its lease.
const SPEC: jobs::Claim = jobs::Claim {
    table: "retention_policies",
    ready: &["idle"],
    running: "running",
    lease_ms: 120_000,
    due_column: Some("next_attempt_at"),
};

/// What one category's run did.
struct Outcome {
    removed: i64,
    batches: i64,
    complete: bool,
    error: Option<String>,
}

pub(crate) fn tick() -> Result<String, String> {
    let settings = Settings::load();
    let started = clock::now_ms();
    let deadline = started.saturating_add(settings.max_run_ms);
    let claimed = jobs::claim(&SPEC, CATEGORIES.len() as u32).map_err(|p| p.detail)?;
    let mut report = Vec::new();
    for category in claimed {
        match run(&category, &settings, deadline) {
            Ok(line) => report.push(line),
            Err(p) => report.push(format!("{category}: {}", p.detail)),
        }
    }
    if !report.is_empty() {
        forget_old_runs(&settings);
    }
    Ok(report.join("; "))
}

/// Run the claimed category `name`, record it, and finish the claim.
fn run(name: &str, settings: &Settings, deadline: i64) -> Result<String, Problem> {
    let policy: Option<Policy> = db::find("id", name)?;
    let (Some(policy), Some(category)) = (policy, categories::find(name)) else {
        // not a category this version knows (a row from elsewhere): park it
        jobs::finish(&SPEC, name, "off", &[])?;
        return Ok(format!("{name}: not a known category"));
    };
    if !policy.enabled {
        jobs::finish(&SPEC, name, "off", &[])?;
        return Ok(format!("{name}: disabled"));
    }
    let started_ms = clock::now_ms();
    let started_at = clock::rfc3339(started_ms);
    let cutoff =
        clock::rfc3339(started_ms.saturating_sub(policy.retain_days.saturating_mul(DAY_MS)));
    let outcome = purge(category, &cutoff, settings.batch_size, deadline);
    let finished_ms = clock::now_ms();
    let duration_ms = finished_ms.saturating_sub(started_ms);
    db::execute(
        "INSERT INTO retention_runs (id, category, started_at, finished_at, cutoff, removed, \
         batches, duration_ms, complete, error, instance) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        params![
            clock::new_id(),
            name,
            started_at.as_str(),
            clock::rfc3339(finished_ms),
            cutoff.as_str(),
            outcome.removed,
            outcome.batches,
            duration_ms,
            outcome.complete,
            outcome.error.as_deref(),
            host::instance_id()
        ],
    )?;
    let (removed, batches, ms) =
        (outcome.removed.to_string(), outcome.batches.to_string(), duration_ms.to_string());
    let mut fields = vec![
        ("category", name),
        ("removed", removed.as_str()),
        ("batches", batches.as_str()),
        ("duration_ms", ms.as_str()),
        ("cutoff", cutoff.as_str()),
    ];
    if let Some(error) = &outcome.error {
        fields.push(("error", error.as_str()));
    }
    let level = if outcome.error.is_some() { Level::Warn } else { Level::Info };
    log::with_fields(level, &format!("retention run of {name}"), &fields);
    // more to purge: due again at the next tick; otherwise after the interval
    let next = if outcome.complete || outcome.error.is_some() {
        Some(clock::rfc3339(
            finished_ms.saturating_add(settings.interval_seconds.saturating_mul(1000)),
        ))
    } else {
        None
    };
    if !jobs::finish(&SPEC, name, "idle", &[("next_attempt_at", next.to_value())])? {
        log::warn(&format!("retention run of {name}: the lease was lost before it finished"));
    }
    Ok(match outcome.error {
        Some(e) => format!("{name}: {e}"),
        None => format!("{name}: removed {removed} in {batches} batches"),
    })
}

/// Purge `category` older than `cutoff` in batches of `batch` until a call removes fewer,
/// the lease is lost, or `deadline` (ms since the epoch) passes.
fn purge(category: &Category, cutoff: &str, batch: i64, deadline: i64) -> Outcome {
    let mut outcome = Outcome { removed: 0, batches: 0, complete: false, error: None };
    let body = db::PurgeRequest { before: cutoff.into(), limit: batch };
    loop {
        match purge_once(category, &body) {
            Ok(removed) => {
                outcome.removed = outcome.removed.saturating_add(removed);
                outcome.batches += 1;
                if removed < batch {
                    outcome.complete = true;
                    return outcome;
                }
            }
            Err(error) => {
                outcome.error = Some(error);
                return outcome;
            }
        }
        if clock::now_ms() >= deadline {
            return outcome;
        }
        match jobs::renew(&SPEC, category.name) {
            Ok(true) => {}
            Ok(false) => {
                outcome.error = Some("the lease was lost to another instance".into());
                return outcome;
            }
            Err(p) => {
                outcome.error = Some(p.detail);
                return outcome;
            }
        }
    }
}

/// One purge call; what went wrong as the run's error.
fn purge_once(category: &Category, body: &db::PurgeRequest) -> Result<i64, String> {
    let answer = packs::call(category.pack, Method::Post, category.purge_path, &[], Some(body))
        .map_err(|e| call_error(category, e))?;
    if !answer.ok() {
        return Err(format!(
            "{} {} answered {}: {}",
            category.pack,
            category.purge_path,
            answer.status,
            answer.failure()
        ));
    }
    answer.json()["removed"].as_i64().ok_or_else(|| {
        format!("{} {} answered no `removed` count", category.pack, category.purge_path)
    })
}

fn call_error(category: &Category, e: CallError) -> String {
    match e {
        CallError::Unavailable(d) | CallError::NotFound(d) => {
            format!("the owning pack `{}` cannot purge: {d}", category.pack)
        }
        CallError::AccessDenied(d) => {
            format!("`{}` is not granted to retention (grants.packs): {d}", category.pack)
        }
        CallError::Conflict(d) | CallError::Invalid(d) | CallError::Internal(d) => {
            format!("calling `{}` failed: {d}", category.pack)
        }
    }
}

/// Drop recorded runs older than `runs_kept_days` (best effort: a failure is only logged).
fn forget_old_runs(settings: &Settings) {
    let before = clock::rfc3339(
        clock::now_ms().saturating_sub(settings.runs_kept_days.saturating_mul(DAY_MS)),
    );
    if let Err(p) = db::execute("DELETE FROM retention_runs WHERE started_at < $1", params![before])
    {
        log::warn(&format!("retention: old runs not removed: {}", p.detail));
    }
}
