//! The pack's settings (`[packs.notifications.settings]`): the retry schedule and the attempt
//! cap, the delivery timeout, how long a rotated-out secret still signs, the tick's lease and
//! budget, and the defaults of email channels (`[….settings.email]`: `relay`, `from`) and SMS
//! channels (`[….settings.sms]`: the provider's `endpoint`, `account_sid`, `from`). A setting
//! out of range takes its default and the log says so: delivery goes on.

use valhalla_sdk::prelude::*;

/// Standard Webhooks' schedule after the first attempt: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h,
/// 10 h.
const DEFAULT_SCHEDULE: [f64; 7] = [5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0];
/// The host caps one outbound request at 30 s.
const MAX_TIMEOUT_MS: u32 = 30_000;
/// Twilio's Messages resource: a form POST, HTTP Basic with the account SID and auth token.
pub(crate) const TWILIO_ENDPOINT: &str =
    "https://api.twilio.com/2010-04-01/Accounts/{account_sid}/Messages.json";

/// Defaults of email channels.
#[derive(Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(default)]
pub(crate) struct EmailSettings {
    /// the SMTP relay of a channel that names none (one of `grants.smtp`)
    pub relay: Option<String>,
    /// the `From` of a channel that gives none
    pub from: Option<String>,
}

/// The SMS provider: a Twilio-compatible form POST (`To`, `From`, `Body`) with HTTP Basic
/// (account SID, auth token).
#[derive(Deserialize, Debug, Clone, PartialEq)]
#[serde(default)]
pub(crate) struct SmsSettings {
    /// the provider's messages endpoint (under `grants.outbound`); `{account_sid}` is
    /// replaced by the channel's account
    pub endpoint: String,
    /// the account of a channel that gives none
    pub account_sid: Option<String>,
    /// the sender number of a channel that gives none
    pub from: Option<String>,
}

impl Default for SmsSettings {
    fn default() -> Self {
        Self { endpoint: TWILIO_ENDPOINT.into(), account_sid: None, from: None }
    }
}

#[derive(Deserialize, Debug, Clone, PartialEq)]
#[serde(default)]
pub(crate) struct Settings {
    /// seconds to wait before each retry (the last one repeats when `max_attempts` asks for
    /// more)
    pub retry_schedule_seconds: Vec<f64>,
    /// attempts in all, the first included; then the message is dead (default: one more
    /// than the schedule has retries)
    pub max_attempts: Option<i64>,
    /// each wait is stretched or shrunk by up to this fraction, at random (0.2: ±20 %)
    pub jitter: f64,
    /// how long one delivery may take, in milliseconds (at most 30 000)
    pub delivery_timeout_ms: u32,
    /// a receiver's `Retry-After` is honoured up to this many seconds
    pub max_retry_after_seconds: i64,
    /// how long the secret before a rotation still signs, in seconds
    pub rotation_grace_seconds: i64,
    /// how long a tick's claim on a message holds; longer than `runtime.tick_deadline_ms`
    pub lease_ms: u64,
    /// messages one tick delivers at most
    pub batch: u32,
    /// a tick starts no new delivery after this many milliseconds (so the last one still
    /// ends within the tick's deadline)
    pub tick_budget_ms: i64,
    pub email: EmailSettings,
    pub sms: SmsSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            retry_schedule_seconds: DEFAULT_SCHEDULE.to_vec(),
            max_attempts: None,
            jitter: 0.2,
            delivery_timeout_ms: 15_000,
            max_retry_after_seconds: 86_400,
            rotation_grace_seconds: 86_400,
            lease_ms: 60_000,
            batch: 20,
            tick_budget_ms: 10_000,
            email: EmailSettings::default(),
            sms: SmsSettings::default(),
        }
    }
}

impl Settings {
    /// The settings; a bad one (or all, when they do not parse) takes its default.
    pub fn load() -> Self {
        host::checked_settings("notifications")
    }

    /// Attempts in all before a message is dead.
    pub fn attempts(&self) -> i64 {
        self.max_attempts.unwrap_or(self.retry_schedule_seconds.len() as i64 + 1)
    }
}

impl host::CheckedSettings for Settings {
    fn checked(mut self) -> (Self, Vec<String>) {
        let d = Settings::default();
        let mut problems = Vec::new();
        let mut bad = |name: &str, rule: &str| problems.push(format!("{name} {rule}"));
        let schedule_ok = !self.retry_schedule_seconds.is_empty()
            && self.retry_schedule_seconds.len() <= 100
            && self
                .retry_schedule_seconds
                .iter()
                .all(|s| s.is_finite() && (0.0..=604_800.0).contains(s));
        if !schedule_ok {
            bad("retry_schedule_seconds", "must list 1 to 100 waits of 0 to 604800 seconds");
            self.retry_schedule_seconds = d.retry_schedule_seconds;
        }
        if self.max_attempts.is_some_and(|n| !(1..=100).contains(&n)) {
            bad("max_attempts", "must be between 1 and 100");
            self.max_attempts = None;
        }
        if !(self.jitter.is_finite() && (0.0..=1.0).contains(&self.jitter)) {
            bad("jitter", "must be between 0 and 1");
            self.jitter = d.jitter;
        }
        if !(1..=MAX_TIMEOUT_MS).contains(&self.delivery_timeout_ms) {
            bad("delivery_timeout_ms", "must be between 1 and 30000");
            self.delivery_timeout_ms = d.delivery_timeout_ms;
        }
        if self.max_retry_after_seconds < 0 {
            bad("max_retry_after_seconds", "must not be negative");
            self.max_retry_after_seconds = d.max_retry_after_seconds;
        }
        if !(0..=31_622_400).contains(&self.rotation_grace_seconds) {
            bad("rotation_grace_seconds", "must be between 0 and 31622400 (366 days)");
            self.rotation_grace_seconds = d.rotation_grace_seconds;
        }
        if !(100..=86_400_000).contains(&self.lease_ms) {
            bad("lease_ms", "must be between 100 and 86400000");
            self.lease_ms = d.lease_ms;
        }
        if !(1..=1000).contains(&self.batch) {
            bad("batch", "must be between 1 and 1000");
            self.batch = d.batch;
        }
        let endpoint = self.sms.endpoint.to_ascii_lowercase();
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            bad("sms.endpoint", "must be an http:// or https:// URL");
            self.sms.endpoint = d.sms.endpoint;
        }
        if self.tick_budget_ms < 0 {
            bad("tick_budget_ms", "must not be negative");
            self.tick_budget_ms = d.tick_budget_ms;
        }
        (self, problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> (Settings, Vec<String>) {
        serde_json::from_str::<Settings>(json).unwrap().checked()
    }

    #[test]
    fn the_defaults_follow_standard_webhooks() {
        let (s, problems) = parse("{}");
        assert!(problems.is_empty());
        assert_eq!(s.retry_schedule_seconds, DEFAULT_SCHEDULE);
        assert_eq!(s.attempts(), 8, "the first attempt and seven retries");
        assert_eq!(s.delivery_timeout_ms, 15_000);
    }

    #[test]
    fn a_bad_setting_falls_back_alone() {
        let (s, problems) = parse(
            r#"{"retry_schedule_seconds": [0.1, -1], "max_attempts": 3, "jitter": 2,
                "delivery_timeout_ms": 60000, "lease_ms": 5000}"#,
        );
        assert_eq!(s.retry_schedule_seconds, DEFAULT_SCHEDULE);
        assert_eq!((s.attempts(), s.jitter, s.delivery_timeout_ms), (3, 0.2, 15_000));
        assert_eq!(s.lease_ms, 5000);
        assert_eq!(problems.len(), 3, "{problems:?}");
        let (s, problems) = parse(r#"{"retry_schedule_seconds": [0.2, 0.2]}"#);
        assert!(problems.is_empty());
        assert_eq!(s.attempts(), 3);
    }
}
