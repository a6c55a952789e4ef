//! The tick: claims queued jobs with a lease (SDK `jobs`) and runs them queued → running →
//! done | failed, page by page: a page is fetched from the source, written in the job's
//! format, appended to the artefact, and the job's progress (rows, bytes, the next page's
//! cursor) saved with its lease renewed. A tick works for `tick_budget_ms` and leaves the
//! rest to the next, which goes on where the progress says while the artefact is exactly as
//! long as recorded. A job this process did not start (its runner died: a crash, a SIGKILL,
//! its lease lapsed) begins again from nothing: its partial artefact is removed first, so it
//! completes once, whole. A cancelled job is noticed at the next page (the lease is gone) and
//! its artefact removed.

use valhalla_sdk::bindings::valhalla::pack::log::Level;
use valhalla_sdk::db::ToValue;
use valhalla_sdk::prelude::*;
use valhalla_sdk::{artefacts, jobs};

use crate::format;
use crate::job::{CANCELLED, DONE, FAILED, Job, RUNNING, Settings};
use crate::sources::{self, Position};

/// How one run of a job ended.
enum Ran {
    Done(i64),
    Failed,
    /// the lease is no longer ours (cancelled, or taken over)
    Lost,
    /// the tick's budget is spent; the next tick goes on
    Paused,
}

/// What one tick works with.
struct Tick {
    spec: jobs::Claim<'static>,
    page_size: u32,
    /// when the tick's budget is spent (ms since the epoch)
    deadline: i64,
}

pub(crate) fn tick() -> Result<String, String> {
    let settings = Settings::load().map_err(|p| p.detail)?;
    let t = Tick {
        spec: settings.spec(),
        page_size: settings.page_size,
        deadline: clock::now_ms().saturating_add(settings.tick_budget_ms),
    };
    let (mut done, mut failed, mut rows, mut worked) = (0, 0, 0i64, false);
    while clock::now_ms() < t.deadline {
        let Some((id, fresh)) = next_job(&t).map_err(|p| p.detail)? else { break };
        worked = true;
        match run(&t, &id, fresh).map_err(|p| p.detail)? {
            Ran::Done(n) => {
                done += 1;
                rows += n;
            }
            Ran::Failed => failed += 1,
            Ran::Lost => {}
            Ran::Paused => break,
        }
    }
    // an idle tick reports nothing (the scheduler logs only a report that says something)
    if !worked {
        return Ok(String::new());
    }
    Ok(format!("{done} done ({rows} rows), {failed} failed"))
}

/// A job of ours left running by an earlier tick of this process, else a newly claimed one
/// (`true`: it starts from nothing).
fn next_job(t: &Tick) -> Result<Option<(String, bool)>, Problem> {
    let own = db::query_one(
        "SELECT id FROM export_jobs WHERE status = $1 AND claimed_by = $2 ORDER BY id LIMIT 1",
        params![RUNNING, host::instance_id()],
    )?;
    if let Some(row) = own {
        return Ok(Some((row.get::<String>("id")?, false)));
    }
    Ok(jobs::claim(&t.spec, 1)?.pop().map(|id| (id, true)))
}

/// Where a run starts: rows and bytes written, and the next page.
struct Progress {
    rows: i64,
    bytes: i64,
    at: Position,
}

fn run(t: &Tick, id: &str, fresh: bool) -> Result<Ran, Problem> {
    let job: Job = db::get("id", id)?;
    let Some(source) = sources::find(&job.source) else {
        return fail(t, &job, &format!("unknown source `{}`", job.source));
    };
    let name = job.artefact();
    let on_disk = match artefacts::size(&name) {
        Ok(size) => size,
        Err(p) => return fail(t, &job, &p.detail),
    };
    let resumable = !fresh && job.bytes > 0 && on_disk == u64::try_from(job.bytes).ok();
    let mut progress = if resumable {
        Progress {
            rows: job.rows,
            bytes: job.bytes,
            at: Position::parse(job.page_cursor.as_deref()),
        }
    } else {
        match restart(&job) {
            Ok(true) => Progress { rows: 0, bytes: 0, at: Position::Start },
            Ok(false) => return lost(&job),
            Err(p) => return fail(t, &job, &p.detail),
        }
    };
    loop {
        if clock::now_ms() >= t.deadline {
            return Ok(Ran::Paused);
        }
        let page = match sources::fetch(source, &job.filter, &progress.at, t.page_size) {
            Ok(page) => page,
            Err(e) => return fail(t, &job, e.text()),
        };
        if page.next.as_ref() == Some(&progress.at) {
            let error = format!("source `{}` answered the same page again", source.name);
            return fail(t, &job, &error);
        }
        let mut chunk = if progress.bytes == 0 {
            format::preamble(&job.format, source.columns)
        } else {
            Vec::new()
        };
        let written = u64::try_from(progress.rows).unwrap_or(0);
        chunk.extend(format::page(&job.format, source.columns, &page.items, written));
        if page.next.is_none() {
            chunk.extend_from_slice(format::epilogue(&job.format));
        }
        // a cancel (or a takeover) between pages: write nothing more
        if !jobs::renew(&t.spec, id)? {
            return lost(&job);
        }
        let size = match artefacts::append(&name, &chunk) {
            Ok(size) => size,
            Err(p) => return fail(t, &job, &p.detail),
        };
        progress.bytes = i64::try_from(size).unwrap_or(i64::MAX);
        progress.rows += i64::try_from(page.items.len()).unwrap_or(0);
        let Some(next) = page.next else {
            return finish(t, &job, &progress);
        };
        progress.at = next;
        if !save(t, id, &progress)? {
            return lost(&job);
        }
    }
}

/// Begin `job` again from nothing: its artefact removed, its progress reset, one more
/// attempt counted. False when it is no longer ours.
fn restart(job: &Job) -> Result<bool, Problem> {
    artefacts::remove(&job.artefact())?;
    let now = clock::now_rfc3339();
    let changed = db::execute(
        "UPDATE export_jobs SET row_count = 0, byte_count = 0, page_cursor = NULL, error = NULL, \
         attempts = attempts + 1, started_at = $3, updated_at = $3 \
         WHERE id = $1 AND status = $2 AND claimed_by = $4",
        params![job.id.as_str(), RUNNING, now, host::instance_id()],
    )?;
    Ok(changed == 1)
}

/// Save the progress and renew the lease, while the job is ours.
fn save(t: &Tick, id: &str, p: &Progress) -> Result<bool, Problem> {
    let now_ms = clock::now_ms();
    let lease = now_ms.saturating_add(i64::try_from(t.spec.lease_ms).unwrap_or(i64::MAX));
    let changed = db::execute(
        "UPDATE export_jobs SET row_count = $1, byte_count = $2, page_cursor = $3, \
         updated_at = $4, lease_until = $5 WHERE id = $6 AND status = $7 AND claimed_by = $8",
        params![
            p.rows,
            p.bytes,
            p.at.stored(),
            clock::rfc3339(now_ms),
            clock::rfc3339(lease),
            id,
            RUNNING,
            host::instance_id()
        ],
    )?;
    Ok(changed == 1)
}

fn finish(t: &Tick, job: &Job, p: &Progress) -> Result<Ran, Problem> {
    let now = clock::now_rfc3339();
    let set = [
        ("row_count", p.rows.to_value()),
        ("byte_count", p.bytes.to_value()),
        ("page_cursor", None::<String>.to_value()),
        ("finished_at", now.to_value()),
        ("updated_at", now.to_value()),
    ];
    if !jobs::finish(&t.spec, &job.id, DONE, &set)? {
        return lost(job);
    }
    let (rows, bytes) = (p.rows.to_string(), p.bytes.to_string());
    log::with_fields(
        Level::Info,
        "export done",
        &[("export", &job.id), ("source", &job.source), ("rows", &rows), ("bytes", &bytes)],
    );
    Ok(Ran::Done(p.rows))
}

/// End `job` as failed with `error`; its partial artefact goes (if it can).
fn fail(t: &Tick, job: &Job, error: &str) -> Result<Ran, Problem> {
    let now = clock::now_rfc3339();
    let set = [
        ("error", error.to_value()),
        ("byte_count", 0i64.to_value()),
        ("page_cursor", None::<String>.to_value()),
        ("finished_at", now.to_value()),
        ("updated_at", now.to_value()),
    ];
    if !jobs::finish(&t.spec, &job.id, FAILED, &set)? {
        return lost(job);
    }
    let _ = artefacts::remove(&job.artefact());
    log::with_fields(
        Level::Warn,
        "export failed",
        &[("export", &job.id), ("source", &job.source), ("error", error)],
    );
    Ok(Ran::Failed)
}

/// The job is no longer ours: when it was cancelled, what we wrote of it goes.
fn lost(job: &Job) -> Result<Ran, Problem> {
    let now: Option<Job> = db::find("id", &job.id)?;
    if now.is_none_or(|j| j.status == CANCELLED) {
        artefacts::remove(&job.artefact())?;
    }
    Ok(Ran::Lost)
}
