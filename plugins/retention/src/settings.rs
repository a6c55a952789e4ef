//! The pack's settings (`[packs.retention.settings]`): how often a category runs, how many
//! rows one purge call removes, how long one tick may purge, how long runs are kept.

use valhalla_sdk::prelude::*;

/// The longest a tick purges by default (below the host's 30 s tick deadline).
const DEFAULT_MAX_RUN_MS: i64 = 20_000;

#[derive(Deserialize, Debug, PartialEq)]
#[serde(default)]
pub(crate) struct Settings {
    /// seconds from a category's run to its next (an hour by default)
    pub interval_seconds: i64,
    /// rows per purge call, 1..=5000 (1000 by default)
    pub batch_size: i64,
    /// how long one tick purges before it stops and lets the next tick go on (20 s by
    /// default; keep it below `runtime.tick_deadline_ms`)
    pub max_run_ms: i64,
    /// days a recorded run is kept (90 by default)
    pub runs_kept_days: i64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            interval_seconds: 3600,
            batch_size: 1000,
            max_run_ms: DEFAULT_MAX_RUN_MS,
            runs_kept_days: 90,
        }
    }
}

impl Settings {
    /// The settings; one out of range (or all, when they do not parse) takes its default, and
    /// the log says so: the purges still run.
    pub fn load() -> Self {
        host::checked_settings("retention")
    }
}

impl host::CheckedSettings for Settings {
    fn checked(self) -> (Self, Vec<String>) {
        let d = Settings::default();
        let mut problems = Vec::new();
        let mut within = |name: &str, value: i64, min: i64, max: i64, default: i64| {
            if (min..=max).contains(&value) {
                value
            } else {
                problems.push(format!("{name} must be between {min} and {max}"));
                default
            }
        };
        let checked = Settings {
            interval_seconds: within(
                "interval_seconds",
                self.interval_seconds,
                1,
                31_536_000,
                d.interval_seconds,
            ),
            batch_size: within("batch_size", self.batch_size, 1, db::MAX_PURGE, d.batch_size),
            max_run_ms: within("max_run_ms", self.max_run_ms, 100, 600_000, d.max_run_ms),
            runs_kept_days: within(
                "runs_kept_days",
                self.runs_kept_days,
                1,
                3650,
                d.runs_kept_days,
            ),
        };
        (checked, problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_settings_take_their_default() {
        let s =
            Settings { interval_seconds: 0, batch_size: 6000, max_run_ms: 50, runs_kept_days: 7 };
        let (checked, problems) = s.checked();
        let d = Settings::default();
        assert_eq!(
            (
                checked.interval_seconds,
                checked.batch_size,
                checked.max_run_ms,
                checked.runs_kept_days
            ),
            (d.interval_seconds, d.batch_size, d.max_run_ms, 7)
        );
        assert_eq!(problems.len(), 3, "{problems:?}");
        let parsed: Settings = serde_json::from_str(r#"{"interval_seconds": 1}"#).unwrap();
        assert_eq!((parsed.interval_seconds, parsed.batch_size), (1, 1000));
    }
}
