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
    let sql = "SELECT mode, reason, changed_by, changed_at, changed_at AS updated_at, window_id, \
               until_at AS until FROM maintenance_state WHERE id = $1";
    let normal = || State { mode: "normal".into(), ..State::default() };
    let state = db::query_one_as(sql, params!["current"])?.unwrap_or_else(normal);
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
    cache::set_json("state", next, Some(STATE_TTL_MS));
    log::audit("maintenance.mode", &format!("maintenance/{}", next.mode), Some(before), Some(next));
    Ok(())
}

/// `POST /system/maintenance/state/{mode}?reason=…`
#[derive(Deserialize)]
struct Reason {
    reason: Option<String>,
}

fn set_state(
    Path(mode): Path<String>,
    Query(q): Query<Reason>,
    Actor(actor): Actor,
) -> Result<Json<State>, Problem> {
    if !MODES.contains(&mode.as_str()) {
        return Err(Problem::invalid_field("mode", "must be normal, read_only or maintenance"));
    }
    let mut v = Validator::default();
    v.max_length("reason", q.reason.as_deref(), 1024);
    v.finish()?;
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
    #[validate(custom(function = rfc3339))]
    starts_at: String,
    #[validate(custom(function = rfc3339))]
    ends_at: String,
    /// `read_only` or `maintenance` (the default)
    #[serde(default = "maintenance_mode")]
    #[validate(custom(function = window_mode))]
    mode: String,
    #[serde(default)]
    #[validate(length(max = 1024))]
    reason: Option<String>,
}

fn maintenance_mode() -> String {
    "maintenance".into()
}

fn rfc3339(t: &str) -> Result<(), &'static str> {
    clock::parse_rfc3339(t).map(|_| ()).ok_or("must be an RFC 3339 timestamp")
}

fn window_mode(mode: &str) -> Result<(), &'static str> {
    match mode {
        "read_only" | "maintenance" => Ok(()),
        _ => Err("a window switches to read_only or maintenance"),
    }
}

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
}

fn create_window(
    Valid(body): Valid<NewWindow>,
    Actor(actor): Actor,
) -> Result<Created<Window>, Problem> {
    // Stored in one fixed format, so that text comparison is time comparison.
    let normalise = |t: &str| clock::parse_rfc3339(t).map(clock::rfc3339).unwrap_or_default();
    let columns = db::columns::<Window>();
    let sql = format!(
        "INSERT INTO maintenance_windows ({columns}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) \
         RETURNING {columns}"
    );
    let window: Window = db::returning(
        &sql,
        params![
            clock::new_id(),
            normalise(&body.starts_at),
            normalise(&body.ends_at),
            body.mode.as_str(),
            body.reason,
            "scheduled",
            actor,
            clock::now_rfc3339()
        ],
    )?;
    let target = format!("maintenance/windows/{}", window.id);
    log::audit::<(), _>("maintenance.window.create", &target, None, Some(&window));
    Ok(Created(window))
}

/// `GET /system/maintenance/windows?status=…`
#[derive(Deserialize)]
struct StatusQuery {
    status: Option<String>,
}

fn list_windows(
    page: Page,
    Query(q): Query<StatusQuery>,
) -> Result<Json<db::List<Window>>, Problem> {
    if q.status.as_deref().is_some_and(|s| !["scheduled", "active", "done"].contains(&s)) {
        return Err(Problem::invalid_field("status", "must be scheduled, active or done"));
    }
    let mut filter = db::Filter::new();
    filter.eq("status", q.status);
    db::list_page("maintenance_windows", &filter, "starts_at, id", page)
}

/// Windows matching `condition` (`$1`… are `params`).
fn windows(condition: &str, params: Vec<db::Value>) -> Result<Vec<Window>, Problem> {
    let sql =
        format!("SELECT {} FROM maintenance_windows WHERE {condition}", db::columns::<Window>());
    db::query_as(&sql, params)
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
    let ending = windows(
        "status IN ($1, $2) AND ends_at <= $3",
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
    let starting = windows(
        "status = $1 AND starts_at <= $2 AND ends_at > $2 ORDER BY starts_at",
        params!["scheduled", now.as_str()],
    )?;
    for w in &starting {
        let current = set_window_status(&w.id, "active", &now)?;
        let reason = w.reason.clone().or_else(|| Some(format!("maintenance window {}", w.id)));
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
        let mut v = Validator::default();
        serde_json::from_str::<NewWindow>(body).unwrap().validate(&mut v);
        let p = v.finish().unwrap_err();
        let fields: Vec<_> = p.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["starts_at", "mode"]);
        assert_eq!(p.errors[1].message, "a window switches to read_only or maintenance");
    }
}
