//! The pack's settings (`[packs.honeypots.settings]`): how long an auto-block lasts, and how
//! many hits of one source on one decoy are recorded a minute (a scanner's flood records its
//! first hits, and is answered alike after them).

use valhalla_sdk::prelude::*;

const DEFAULT_BLOCK_SECONDS: i64 = 14_400;
const DEFAULT_RECORDS_PER_MINUTE: i64 = 60;

#[derive(Deserialize, Debug, PartialEq)]
#[serde(default)]
pub(crate) struct Settings {
    /// how long an auto-block lasts (four hours by default)
    pub block_duration_seconds: i64,
    /// hits of one source on one decoy recorded per minute, at most (60 by default)
    pub max_records_per_minute: i64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            block_duration_seconds: DEFAULT_BLOCK_SECONDS,
            max_records_per_minute: DEFAULT_RECORDS_PER_MINUTE,
        }
    }
}

impl Settings {
    /// The settings; one that is not a positive number (or all, when they do not parse)
    /// takes its default, and the log says so: a decoy still answers and records.
    pub fn load() -> Self {
        host::checked_settings("honeypots")
    }
}

impl host::CheckedSettings for Settings {
    fn checked(self) -> (Self, Vec<String>) {
        let defaults = Settings::default();
        let mut problems = Vec::new();
        let mut positive = |name: &str, value: i64, default: i64| {
            if value > 0 {
                value
            } else {
                problems.push(format!("{name} must be a positive number"));
                default
            }
        };
        let checked = Settings {
            block_duration_seconds: positive(
                "block_duration_seconds",
                self.block_duration_seconds,
                defaults.block_duration_seconds,
            ),
            max_records_per_minute: positive(
                "max_records_per_minute",
                self.max_records_per_minute,
                defaults.max_records_per_minute,
            ),
        };
        (checked, problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> (Settings, Vec<String>) {
        serde_json::from_str::<Settings>(json).unwrap().checked()
    }

    #[test]
    fn settings_default_and_bad_ones_fall_back() {
        assert_eq!(parse("{}"), (Settings::default(), vec![]));
        assert_eq!(Settings::default().block_duration_seconds, 14_400);
        let (s, problems) = parse(r#"{"block_duration_seconds": 60, "max_records_per_minute": 0}"#);
        assert_eq!((s.block_duration_seconds, s.max_records_per_minute), (60, 60));
        assert_eq!(problems, ["max_records_per_minute must be a positive number"]);
    }
}
