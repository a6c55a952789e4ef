//! An export job as stored and answered, its statuses, its lease ([`SPEC`], SDK `jobs`), its
//! artefact's name and the pack's settings.

use alloc::collections::BTreeMap;

use valhalla_sdk::jobs;
use valhalla_sdk::prelude::*;

pub(crate) const QUEUED: &str = "queued";
pub(crate) const RUNNING: &str = "running";
pub(crate) const DONE: &str = "done";
pub(crate) const FAILED: &str = "failed";
pub(crate) const CANCELLED: &str = "cancelled";
pub(crate) const STATUSES: [&str; 5] = [QUEUED, RUNNING, DONE, FAILED, CANCELLED];
/// The statuses a job ends in.
pub(crate) const FINISHED: [&str; 3] = [DONE, FAILED, CANCELLED];

/// How the tick claims jobs; the lease's length is the `lease_ms` setting ([`Settings::spec`]).
pub(crate) const SPEC: jobs::Claim = jobs::Claim {
    table: "export_jobs",
    ready: &[QUEUED],
    running: RUNNING,
    lease_ms: 120_000,
    due_column: None,
};

/// An export job as stored and answered.
#[derive(Serialize, Deserialize, JsonSchema, Clone)]
pub(crate) struct Job {
    pub id: String,
    /// the source list: `system_config`, `feature_flags`, `system_log`, `honeypot_telemetry`
    pub source: String,
    /// `json` or `csv`
    pub format: String,
    /// the query parameters given to the source
    #[serde(deserialize_with = "db::json_text")]
    pub filter: BTreeMap<String, String>,
    /// `queued`, `running`, `done`, `failed` or `cancelled`
    pub status: String,
    /// why it failed
    pub error: Option<String>,
    /// items written so far (all of them once done)
    pub rows: i64,
    /// bytes of the artefact so far
    pub bytes: i64,
    /// how many times a tick started it (more than one: its runner died and it began again)
    pub attempts: i64,
    pub requested_by: Option<String>,
    pub created_at: String,
    /// when the current attempt began
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub updated_at: String,
    /// where the next page starts, while it runs
    #[serde(skip_serializing)]
    #[schemars(skip)]
    pub page_cursor: Option<String>,
}

impl db::Record for Job {
    const TABLE: &'static str = "export_jobs";
    const RENAMED: &'static [(&'static str, &'static str)] =
        &[("rows", "row_count"), ("bytes", "byte_count")];
    const WHAT: &'static str = "export";
}

impl Job {
    /// This job's audit target.
    pub fn target(&self) -> String {
        format!("exports/{}", self.id)
    }

    /// The artefact's name in the host's directory.
    pub fn artefact(&self) -> String {
        artefact_name(&self.id, &self.format)
    }

    /// The name a download is saved under.
    pub fn filename(&self) -> String {
        format!("{}-{}.{}", self.source, self.id, self.format)
    }

    pub fn finished(&self) -> bool {
        FINISHED.contains(&self.status.as_str())
    }
}

pub(crate) fn artefact_name(id: &str, format: &str) -> String {
    format!("{id}.{format}")
}

/// The 409 of a transition the job's state does not allow.
pub(crate) fn illegal(job: &Job, only: &str) -> Problem {
    Problem::conflict(format!("the export is {}; {only}", job.status))
}

/// `[packs.exports.settings]`.
#[derive(Deserialize)]
pub(crate) struct Settings {
    /// items asked of the source per page (1..=1000)
    #[serde(default = "page_size")]
    pub page_size: u32,
    /// how long one tick works on exports before it leaves the rest to the next (the tick's
    /// deadline, `runtime.tick_deadline_ms`, must be well above it)
    #[serde(default = "budget")]
    pub tick_budget_ms: i64,
    /// how long a running job's lease holds without renewal (it is renewed at every page and
    /// every tick): how soon a job whose host died is taken up again (2 000..=3 600 000)
    #[serde(default = "lease")]
    pub lease_ms: u64,
}

valhalla_sdk::defaults! {
    fn page_size() -> u32 = 1000u32;
    fn budget() -> i64 = 10_000;
    fn lease() -> u64 = 120_000u64;
}

impl Settings {
    /// The settings, checked.
    pub fn load() -> Result<Self, Problem> {
        let s: Settings = host::settings()?;
        if !(1..=1000).contains(&s.page_size)
            || !(100..=600_000).contains(&s.tick_budget_ms)
            || !(2_000..=3_600_000).contains(&s.lease_ms)
        {
            return Err(Problem::internal(
                "the pack's settings are invalid: page_size must be 1 to 1000, \
                 tick_budget_ms 100 to 600000 and lease_ms 2000 to 3600000",
            ));
        }
        Ok(s)
    }

    /// The claim, with this lease.
    pub fn spec(&self) -> jobs::Claim<'static> {
        jobs::Claim { lease_ms: self.lease_ms, ..SPEC }
    }
}
