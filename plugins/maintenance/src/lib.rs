//! maintenance (pack UE): the service mode (normal, read_only, maintenance) with who set it,
//! when and why, and maintenance windows that switch the mode when they start and back when
//! they end (the host's scheduler ticks this pack every second).

#![cfg_attr(not(test), no_std)]

use valhalla_sdk::prelude::*;

fn pack() -> Pack {
    Pack::new(
        "maintenance",
        env!("CARGO_PKG_VERSION"),
        "Maintenance mode and windows",
    )
    .get(
        "/system/maintenance/state",
        Access::Public,
        "The current mode",
        state,
    )
    .post(
        "/system/maintenance/state/{mode}",
        Access::Admin,
        "Switch the mode",
        set_state,
    )
    .post(
        "/system/maintenance/windows",
        Access::Admin,
        "Schedule a maintenance window",
        create_window,
    )
    .get(
        "/system/maintenance/windows",
        Access::Read,
        "List maintenance windows",
        list_windows,
    )
    .schedule(1_000, tick)
}

valhalla_sdk::export_pack!(pack);

const MODES: [&str; 3] = ["normal", "read_only", "maintenance"];
const STATE_COLUMNS: &str = "mode, reason, changed_by, changed_at, window_id, until_at";
const WINDOW_COLUMNS: &str =
    "id, starts_at, ends_at, mode, reason, status, created_by, created_at, updated_at";
/// Bounds how stale another replica's view is; changes here update the cache at once.
const STATE_TTL_MS: u64 = 2_000;

#[derive(Serialize, Deserialize, Clone, PartialEq)]
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
    fn normal() -> Self {
        Self {
            mode: "normal".into(),
            reason: None,
            changed_by: None,
            changed_at: None,
            updated_at: None,
            window_id: None,
            until: None,
        }
    }
}

fn load_state() -> Result<State, Problem> {
    if let Some(s) = cache::get_json::<State>("state") {
        return Ok(s);
    }
    let sql = format!("SELECT {STATE_COLUMNS} FROM maintenance_state WHERE id = $1");
    let state = match db::query_one(&sql, params!["current"])? {
        Some(r) => State {
            mode: r.text("mode")?,
            reason: r.opt_text("reason")?,
            changed_by: r.opt_text("changed_by")?,
            changed_at: r.opt_text("changed_at")?,
            updated_at: r.opt_text("changed_at")?,
            window_id: r.opt_text("window_id")?,
            until: r.opt_text("until_at")?,
        },
        None => State::normal(),
    };
    cache::set_json("state", &state, Some(STATE_TTL_MS));
    Ok(state)
}

/// Record `next` as the current state, audit the change and refresh the cache.
fn save_state(next: &State, before: &State) -> Result<(), Problem> {
    let sql = format!(
        "INSERT INTO maintenance_state (id, {STATE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (id) DO UPDATE SET mode = excluded.mode, reason = excluded.reason, \
         changed_by = excluded.changed_by, changed_at = excluded.changed_at, \
         window_id = excluded.window_id, until_at = excluded.until_at"
    );
    db::execute(
        &sql,
        params![
            "current",
            next.mode.as_str(),
            next.reason.clone(),
            next.changed_by.clone(),
            next.changed_at.clone(),
            next.window_id.clone(),
            next.until.clone()
        ],
    )?;
    cache::set_json("state", next, Some(STATE_TTL_MS));
    log::audit(
        "maintenance.mode",
        &format!("maintenance/{}", next.mode),
        Some(before),
        Some(next),
    );
    Ok(())
}

fn state(_: &Request) -> Result<Response, Problem> {
    Response::ok(&load_state()?)
}

fn set_state(req: &Request) -> Result<Response, Problem> {
    let mode = req.param("mode")?;
    if !MODES.contains(&mode) {
        return Err(Problem::invalid_field(
            "mode",
            "must be normal, read_only or maintenance",
        ));
    }
    let reason = req.query("reason").map(str::to_string);
    let mut v = Validator::default();
    v.max_length("reason", reason.as_deref(), 1024);
    v.finish()?;
    let before = load_state()?;
    let now = clock::now_rfc3339();
    let next = State {
        mode: mode.to_string(),
        reason,
        changed_by: Some(req.actor().to_string()),
        changed_at: Some(now.clone()),
        updated_at: Some(now),
        window_id: None,
        until: None,
    };
    save_state(&next, &before)?;
    Response::ok(&next)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewWindow {
    starts_at: String,
    ends_at: String,
    #[serde(default = "maintenance_mode")]
    mode: String,
    #[serde(default)]
    reason: Option<String>,
}

fn maintenance_mode() -> String {
    "maintenance".into()
}

impl Validate for NewWindow {
    fn validate(&self, v: &mut Validator) {
        let starts = clock::parse_rfc3339(&self.starts_at);
        let ends = clock::parse_rfc3339(&self.ends_at);
        v.check(
            starts.is_some(),
            "starts_at",
            "must be an RFC 3339 timestamp",
        )
        .check(ends.is_some(), "ends_at", "must be an RFC 3339 timestamp")
        .check(
            self.mode == "read_only" || self.mode == "maintenance",
            "mode",
            "a window switches to read_only or maintenance",
        )
        .max_length("reason", self.reason.as_deref(), 1024);
        if let (Some(s), Some(e)) = (starts, ends) {
            v.check(e > s, "ends_at", "must be after starts_at").check(
                e > clock::now_ms(),
                "ends_at",
                "must be in the future",
            );
        }
    }
}

#[derive(Serialize)]
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

impl Window {
    fn from_row(r: &Row) -> Result<Self, Problem> {
        Ok(Self {
            id: r.text("id")?,
            starts_at: r.text("starts_at")?,
            ends_at: r.text("ends_at")?,
            mode: r.text("mode")?,
            reason: r.opt_text("reason")?,
            status: r.text("status")?,
            created_by: r.opt_text("created_by")?,
            created_at: r.text("created_at")?,
            updated_at: r.text("updated_at")?,
        })
    }
}

fn create_window(req: &Request) -> Result<Response, Problem> {
    let body: NewWindow = req.json()?;
    // Stored in one fixed format, so that text comparison is time comparison.
    let normalise = |t: &str| {
        clock::parse_rfc3339(t)
            .map(clock::rfc3339)
            .unwrap_or_default()
    };
    let now = clock::now_rfc3339();
    let sql = format!(
        "INSERT INTO maintenance_windows ({WINDOW_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING {WINDOW_COLUMNS}"
    );
    let row = db::query_one(
        &sql,
        params![
            clock::new_id(),
            normalise(&body.starts_at),
            normalise(&body.ends_at),
            body.mode.as_str(),
            body.reason.clone(),
            "scheduled",
            req.actor(),
            now
        ],
    )?
    .ok_or_else(|| Problem::internal("the insert returned no row"))?;
    let window = Window::from_row(&row)?;
    log::audit::<(), _>(
        "maintenance.window.create",
        &format!("maintenance/windows/{}", window.id),
        None,
        Some(&window),
    );
    Response::created(&window)
}

fn list_windows(req: &Request) -> Result<Response, Problem> {
    let page = req.page()?;
    let status = req.query("status");
    if let Some(s) = status
        && !["scheduled", "active", "done"].contains(&s)
    {
        return Err(Problem::invalid_field(
            "status",
            "must be scheduled, active or done",
        ));
    }
    let mut filter = db::Filter::new();
    filter.eq("status", status);
    db::list_page(
        "maintenance_windows",
        WINDOW_COLUMNS,
        &filter,
        "starts_at, id",
        page,
        Window::from_row,
    )
}

fn set_window_status(id: &str, status: &str, now: &str) -> Result<(), Problem> {
    db::execute(
        "UPDATE maintenance_windows SET status = $2, updated_at = $3 WHERE id = $1",
        params![id, status, now],
    )?;
    Ok(())
}

/// Scheduled: start windows whose start has passed, end those whose end has passed.
fn tick() -> Result<String, String> {
    run_windows().map_err(|p| p.detail)
}

fn run_windows() -> Result<String, Problem> {
    let now = clock::now_rfc3339();
    let mut report = Vec::new();
    // End first, so a window that both started and ended since the last tick leaves `normal`.
    let ending = db::query(
        &format!(
            "SELECT {WINDOW_COLUMNS} FROM maintenance_windows WHERE status IN ($1, $2) AND ends_at <= $3"
        ),
        params!["scheduled", "active", now.as_str()],
    )?;
    for row in &ending {
        let w = Window::from_row(row)?;
        set_window_status(&w.id, "done", &now)?;
        // don't let the cache answer for the decision below
        cache::delete("state");
        let current = load_state()?;
        if current.window_id.as_deref() == Some(w.id.as_str()) {
            let next = State {
                mode: "normal".into(),
                reason: Some(format!("maintenance window {} ended", w.id)),
                changed_by: Some(format!("window:{}", w.id)),
                changed_at: Some(now.clone()),
                updated_at: Some(now.clone()),
                window_id: None,
                until: None,
            };
            save_state(&next, &current)?;
        }
        report.push(format!("ended {}", w.id));
    }
    let starting = db::query(
        &format!(
            "SELECT {WINDOW_COLUMNS} FROM maintenance_windows WHERE status = $1 AND starts_at <= $2 AND ends_at > $2 ORDER BY starts_at"
        ),
        params!["scheduled", now.as_str()],
    )?;
    for row in &starting {
        let w = Window::from_row(row)?;
        set_window_status(&w.id, "active", &now)?;
        cache::delete("state");
        let current = load_state()?;
        let next = State {
            mode: w.mode.clone(),
            reason: w
                .reason
                .clone()
                .or_else(|| Some(format!("maintenance window {}", w.id))),
            changed_by: Some(format!("window:{}", w.id)),
            changed_at: Some(now.clone()),
            updated_at: Some(now.clone()),
            window_id: Some(w.id.clone()),
            until: Some(w.ends_at.clone()),
        };
        save_state(&next, &current)?;
        report.push(format!("started {}", w.id));
    }
    Ok(report.join(", "))
}
