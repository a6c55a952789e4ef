//! maintenance (pack UE): the service mode (normal, read_only, maintenance) with who set it,
//! when and why, and maintenance windows that switch the mode when they start and back when
//! they end (the host's scheduler ticks this pack every second).

#![cfg_attr(not(test), no_std)]

use valhalla_sdk::prelude::*;

fn pack() -> Pack {
    Pack::new("maintenance", env!("CARGO_PKG_VERSION"), "Maintenance mode and windows")
        .get("/system/maintenance/state", Access::Public, "The current mode", || {
            load_state().map(Json)
        })
        .post("/system/maintenance/state/{mode}", Access::Admin, "Switch the mode", set_state)
        .post(
            "/system/maintenance/windows",
            Access::Admin,
            "Schedule a maintenance window",
            create_window,
        )
        .get("/system/maintenance/windows", Access::Read, "List maintenance windows", list_windows)
        .schedule(1_000, || run_windows().map_err(|p| p.detail))
}

valhalla_sdk::export_pack!(pack);

const MODES: [&str; 3] = ["normal", "read_only", "maintenance"];
/// Bounds how stale another replica's view is; changes here update the cache at once.
const STATE_TTL_MS: u64 = 2_000;

/// The current mode, as cached and answered.
#[derive(Serialize, Deserialize, JsonSchema, Default)]
struct State {
    mode: String,
    reason: Option<String>,
    changed_by: Option<String>,
    changed_at: Option<String>,
    /// the same as `changed_at` (the seeds' name for it)
    updated_at: Option<String>,
    /// the window that set this mode, if one did
    window_id: Option<String>,
    /// when that window ends
    until: Option<String>,
}

/// The seeds' `updated_at` reads `changed_at`; `until` is stored as `until_at`.
impl db::Record for State {
    const TABLE: &'static str = "maintenance_state";
    const RENAMED: &'static [(&'static str, &'static str)] =
        &[("updated_at", "changed_at"), ("until", "until_at")];
}

impl State {
    /// `mode`, set by `by` at `now`.
    fn set(mode: &str, reason: Option<String>, by: String, now: &str) -> Self {
        Self {
            mode: mode.into(),
            reason,
            changed_by: Some(by),
            changed_at: Some(now.into()),
            updated_at: Some(now.into()),
            ..Self::default()
        }
    }
}

fn load_state() -> Result<State, Problem> {
    if let Some(s) = cache::get_json::<State>("state") {
        return Ok(s);
    }
    let normal = || State { mode: "normal".into(), ..State::default() };
    let state = db::find("id", "current")?.unwrap_or_else(normal);
    cache::set_json("state", &state, Some(STATE_TTL_MS));
    Ok(state)
}

/// Record `next` as the current state, audit the change and refresh the cache.
fn save_state(next: &State, before: &State) -> Result<(), Problem> {
    db::execute(
        "INSERT INTO maintenance_state (id, mode, reason, changed_by, changed_at, window_id, \
         until_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (id) DO UPDATE SET mode = excluded.mode, reason = excluded.reason, \
         changed_by = excluded.changed_by, changed_at = excluded.changed_at, \
         window_id = excluded.window_id, until_at = excluded.until_at",
        params![
            "current",
            next.mode,
            next.reason,
            next.changed_by,
            next.changed_at,
            next.window_id,
            next.until
        ],
    )?;
    // drop the state on every replica (a delete reaches them all), then cache it here
    cache::delete("state");
    cache::set_json("state", next, Some(STATE_TTL_MS));
    log::audit("maintenance.mode", &format!("maintenance/{}", next.mode), Some(before), Some(next));
    Ok(())
}

/// `POST /system/maintenance/state/{mode}`
#[derive(Deserialize, Validate)]
struct Mode {
    #[validate(one_of = MODES)]
    mode: String,
}

/// `…?reason=…`
#[derive(Deserialize, Validate)]
struct Reason {
    #[validate(length(max = 1024))]
    reason: Option<String>,
}

fn set_state(
    ValidPath(Mode { mode }): ValidPath<Mode>,
    ValidQuery(q): ValidQuery<Reason>,
    Actor(actor): Actor,
) -> Result<Json<State>, Problem> {
    let before = load_state()?;
    let next = State::set(&mode, q.reason, actor, &clock::now_rfc3339());
    save_state(&next, &before)?;
    Ok(Json(next))
}

/// `POST /system/maintenance/windows`: a window to schedule.
#[derive(Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
#[validate(with = in_order)]
struct NewWindow {
    #[validate(rfc3339)]
    starts_at: String,
    #[validate(rfc3339)]
    ends_at: String,
    /// `read_only` or `maintenance` (the default)
    #[serde(default = "maintenance_mode")]
    #[validate(one_of = ["read_only", "maintenance"])]
    mode: String,
    #[serde(default)]
    #[validate(length(max = 1024))]
    reason: Option<String>,
    /// the seeds' name for what the window is for (kept as given; the mode's reason when the
    /// window has none)
    #[serde(default)]
    #[validate(length(max = 1024))]
    description: Option<String>,
}

valhalla_sdk::defaults! { fn maintenance_mode() -> String = "maintenance"; }

/// A window ends after it starts, and in the future.
fn in_order(w: &NewWindow, v: &mut Validator) {
    if let (Some(s), Some(e)) =
        (clock::parse_rfc3339(&w.starts_at), clock::parse_rfc3339(&w.ends_at))
    {
        v.check(e > s, "ends_at", "must be after starts_at");
        v.check(e > clock::now_ms(), "ends_at", "must be in the future");
    }
}

/// A maintenance window as stored and answered.
#[derive(Serialize, Deserialize, JsonSchema)]
struct Window {
    id: String,
    starts_at: String,
    ends_at: String,
    mode: String,
    reason: Option<String>,
    /// scheduled → active → done
    status: String,
    created_by: Option<String>,
    created_at: String,
    updated_at: String,
    description: Option<String>,
}

impl db::Record for Window {
    const TABLE: &'static str = "maintenance_windows";
}

fn create_window(
    Valid(body): Valid<NewWindow>,
    Actor(actor): Actor,
) -> Result<Created<Window>, Problem> {
    // Stored in one fixed format, so that text comparison is time comparison.
    let normalise = |t: &str| clock::parse_rfc3339(t).map(clock::rfc3339).unwrap_or_default();
    let now = clock::now_rfc3339();
    let window: Window = db::insert(params![
        clock::new_id(),
        normalise(&body.starts_at),
        normalise(&body.ends_at),
        body.mode.as_str(),
        body.reason,
        "scheduled",
        actor,
        now.as_str(),
        now.as_str(),
        body.description
    ])?;
    let target = format!("maintenance/windows/{}", window.id);
    log::audit_created("maintenance.window.create", &target, &window);
    Ok(Created(window))
}

/// `GET /system/maintenance/windows?status=…`
#[derive(Deserialize, Validate)]
struct StatusQuery {
    #[validate(one_of = ["scheduled", "active", "done"])]
    status: Option<String>,
}

fn list_windows(
    page: Page,
    ValidQuery(q): ValidQuery<StatusQuery>,
) -> Result<Json<db::List<Window>>, Problem> {
    db::list(db::Filter::new().eq("status", q.status), "starts_at, id", page)
}

/// Mark window `id` as `status`, and read the state afresh: the cache must not answer for
/// the decision that follows.
fn set_window_status(id: &str, status: &str, now: &str) -> Result<State, Problem> {
    db::execute(
        "UPDATE maintenance_windows SET status = $2, updated_at = $3 WHERE id = $1",
        params![id, status, now],
    )?;
    cache::delete("state");
    load_state()
}

/// Scheduled: start windows whose start has passed, end those whose end has passed.
fn run_windows() -> Result<String, Problem> {
    let now = clock::now_rfc3339();
    let mut report = Vec::new();
    // End first, so a window that both started and ended since the last tick leaves `normal`.
    let ending: Vec<Window> = db::select(
        "WHERE status IN ($1, $2) AND ends_at <= $3",
        params!["scheduled", "active", now.as_str()],
    )?;
    for w in &ending {
        let current = set_window_status(&w.id, "done", &now)?;
        if current.window_id.as_deref() == Some(w.id.as_str()) {
            let reason = Some(format!("maintenance window {} ended", w.id));
            let next = State::set("normal", reason, format!("window:{}", w.id), &now);
            save_state(&next, &current)?;
        }
        report.push(format!("ended {}", w.id));
    }
    let starting: Vec<Window> = db::select(
        "WHERE status = $1 AND starts_at <= $2 AND ends_at > $2 ORDER BY starts_at",
        params!["scheduled", now.as_str()],
    )?;
    for w in &starting {
        let current = set_window_status(&w.id, "active", &now)?;
        let reason = (w.reason.clone().or_else(|| w.description.clone()))
            .or_else(|| Some(format!("maintenance window {}", w.id)));
        let next = State {
            window_id: Some(w.id.clone()),
            until: Some(w.ends_at.clone()),
            ..State::set(&w.mode, reason, format!("window:{}", w.id), &now)
        };
        save_state(&next, &current)?;
        report.push(format!("started {}", w.id));
    }
    Ok(report.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_rules_name_their_fields_in_order() {
        let body = r#"{"starts_at":"soon","ends_at":"2030-01-01T00:00:00Z","mode":"normal"}"#;
        let p = Validator::of(&serde_json::from_str::<NewWindow>(body).unwrap()).unwrap_err();
        let fields: Vec<_> = p.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["starts_at", "mode"]);
        assert_eq!(p.errors[1].message, "must be one of `read_only`, `maintenance`");
    }
}
