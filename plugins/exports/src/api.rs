//! The routes: request an export (checked against its source before it is queued), list and
//! read jobs, cancel one, download a finished one (the host streams the artefact), and purge
//! finished jobs with their artefacts (for retention).

use alloc::collections::BTreeMap;

use serde_json::{Map, Value};
use valhalla_sdk::artefacts;
use valhalla_sdk::prelude::*;

use crate::format::{self, FORMATS};
use crate::job::{
    CANCELLED, DONE, FINISHED, Job, QUEUED, RUNNING, STATUSES, artefact_name, illegal,
};
use crate::sources::{self, MAX_FILTER_VALUE, Position, SOURCE_NAMES, SourceError};

/// `POST /system/exports`.
#[derive(Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
#[validate(with = filter_fits_source)]
pub(crate) struct Create {
    /// `system_config`, `feature_flags`, `system_log` or `honeypot_telemetry`
    #[validate(one_of = SOURCE_NAMES)]
    source: String,
    /// `json` (one array) or `csv` (RFC 4180, with a header row)
    #[validate(one_of = FORMATS)]
    format: String,
    /// query parameters for the source's list, e.g. `{"category": "audit"}` for system_log
    #[serde(default)]
    #[schemars(extend("additionalProperties" = { "type": "string" }))]
    filter: Option<Map<String, Value>>,
}

/// Each filter is one the source takes, with a text value; errors name `filter.<key>`.
fn filter_fits_source(body: &Create, v: &mut Validator) {
    let Some(source) = sources::find(&body.source) else { return };
    for (key, value) in body.filter.iter().flatten() {
        let field = format!("filter.{key}");
        if !source.filters.contains(&key.as_str()) {
            let takes = if source.filters.is_empty() {
                format!("source `{}` takes no filter", source.name)
            } else {
                format!(
                    "not a filter of `{}` (it takes {})",
                    source.name,
                    source.filters.join(", ")
                )
            };
            v.error(&field, takes);
        } else {
            match value {
                Value::String(s)
                    if s.len() > MAX_FILTER_VALUE || s.chars().any(char::is_control) =>
                {
                    v.error(&field, format!("must be at most {MAX_FILTER_VALUE} bytes of text"));
                }
                Value::String(_) => {}
                _ => {
                    v.error(&field, "must be a string");
                }
            }
        }
    }
}

/// The source is asked for one item with the filter first: a filter it refuses is a 422
/// naming `filter.<field>`, and nothing is queued.
pub(crate) fn create(
    Valid(body): Valid<Create>,
    Actor(who): Actor,
) -> Result<Accepted<Job>, Problem> {
    let source = sources::find(&body.source)
        .ok_or_else(|| Problem::invalid_field("source", "unknown source"))?;
    let filter: BTreeMap<String, String> = body
        .filter
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_string())))
        .collect();
    if let Err(e) = sources::fetch(source, &filter, &Position::Start, 1) {
        return Err(probe_problem(e));
    }
    // a pack that may not write artefacts says so now, not in a failed job later
    let id = clock::new_id();
    artefacts::size(&artefact_name(&id, &body.format))?;
    let now = clock::now_rfc3339();
    let filter_json = serde_json::to_string(&filter)
        .map_err(|_| Problem::internal("the filter could not be encoded"))?;
    let job: Job = db::insert(params![
        id,
        body.source,
        body.format,
        filter_json,
        QUEUED,
        None::<String>,
        0i64,
        0i64,
        0i64,
        who,
        now.as_str(),
        None::<String>,
        None::<String>,
        now.as_str(),
        None::<String>
    ])?;
    log::audit_created("export.create", &job.target(), &job);
    Ok(Accepted(job))
}

/// A source's refusal as this request's problem: its field errors become `filter.<field>`.
fn probe_problem(e: SourceError) -> Problem {
    match e {
        SourceError::Refused { status: 422, problem, text } => {
            let errors: Vec<FieldError> = problem["errors"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|err| {
                    let field = err["field"].as_str().unwrap_or("");
                    let message = err["message"].as_str().unwrap_or("is not accepted");
                    FieldError::new(format!("filter.{field}"), message)
                })
                .collect();
            if errors.is_empty() {
                Problem::invalid_field("filter", text)
            } else {
                Problem::validation(errors)
            }
        }
        SourceError::Refused { text, .. } => Problem::invalid_field("filter", text),
        SourceError::Unreachable(text) => Problem::invalid_field("source", text),
        SourceError::Failed(text) => Problem::unavailable(text),
    }
}

/// `GET /system/exports?status=&source=`.
#[derive(Deserialize, Validate)]
pub(crate) struct ListQuery {
    #[validate(one_of = STATUSES)]
    status: Option<String>,
    #[validate(one_of = SOURCE_NAMES)]
    source: Option<String>,
}

/// Newest first, by keyset (`cursor` / `next_cursor`).
pub(crate) fn list(
    page: db::CursorPage,
    ValidQuery(q): ValidQuery<ListQuery>,
) -> Result<Json<db::CursorList<Job>>, Problem> {
    let mut filter = db::Filter::new();
    filter.eq("status", q.status).eq("source", q.source);
    db::cursor_page::<Job>(&filter, page)
}

pub(crate) fn get(Path(id): Path<String>) -> Result<Json<Job>, Problem> {
    db::get("id", &id).map(Json)
}

/// `POST /system/exports/{id}/status`: only `cancelled`, of a queued or running job.
#[derive(Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub(crate) struct StatusChange {
    /// `cancelled`
    #[validate(one_of = [CANCELLED])]
    status: String,
}

/// Cancel: the job ends at once; a tick running it notices at its next page and stops. Its
/// partial artefact goes.
pub(crate) fn set_status(
    Path(id): Path<String>,
    Valid(_body): Valid<StatusChange>,
) -> Result<Json<Job>, Problem> {
    let before: Job = db::get("id", &id)?;
    if before.finished() {
        return Err(illegal(&before, "only a queued or running export can be cancelled"));
    }
    let now = clock::now_rfc3339();
    let set = "status = $2, finished_at = $3, updated_at = $3, claimed_by = NULL, \
               lease_until = NULL WHERE id = $1 AND status IN ($4, $5)";
    let Some(after) =
        db::update::<Job>(set, params![id.as_str(), CANCELLED, now, QUEUED, RUNNING])?
    else {
        let current: Job = db::get("id", &id)?;
        return Err(illegal(&current, "only a queued or running export can be cancelled"));
    };
    artefacts::remove(&after.artefact())?;
    log::audit("export.cancel", &after.target(), Some(&before), Some(&after));
    Ok(Json(after))
}

/// The artefact, streamed by the host; 409 until the job is done.
pub(crate) fn download(Path(id): Path<String>) -> Result<Response, Problem> {
    let job: Job = db::get("id", &id)?;
    if job.status != DONE {
        return Err(illegal(&job, "only a done export can be downloaded"));
    }
    Ok(artefacts::response(
        &job.artefact(),
        format::content_type(&job.format),
        Some(&job.filename()),
    ))
}

/// `POST /system/exports/purge` `{before, limit}`: finished jobs (done, failed, cancelled)
/// whose `finished_at` is before the cut-off, oldest first, at most `limit`, with their
/// artefacts (the files first: a crash between leaves rows the next purge removes).
pub(crate) fn purge(Valid(body): Valid<db::PurgeRequest>) -> Result<Json<db::Purged>, Problem> {
    let cutoff = body.cutoff()?;
    let limit = body.limit.clamp(1, db::MAX_PURGE);
    let rest = "WHERE status IN ($1, $2, $3) AND finished_at < $4 ORDER BY finished_at LIMIT $5";
    let jobs: Vec<Job> =
        db::select(rest, params![FINISHED[0], FINISHED[1], FINISHED[2], cutoff, limit])?;
    let mut removed = 0i64;
    for chunk in jobs.chunks(500) {
        for job in chunk {
            artefacts::remove(&job.artefact())?;
        }
        let marks: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 4)).collect();
        let sql = format!(
            "DELETE FROM export_jobs WHERE status IN ($1, $2, $3) AND id IN ({})",
            marks.join(", ")
        );
        let mut values = params![FINISHED[0], FINISHED[1], FINISHED[2]];
        values.extend(chunk.iter().map(|j| db::ToValue::to_value(&j.id)));
        removed += i64::try_from(db::execute(&sql, values)?).unwrap_or(0);
    }
    if removed > 0 {
        let target = format!("exports/before/{}", body.before);
        log::audit(
            "export.purge",
            &target,
            None::<&()>,
            Some(&serde_json::json!({"removed": removed})),
        );
    }
    Ok(Json(db::Purged { removed }))
}
