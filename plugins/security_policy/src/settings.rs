//! The pack's settings (`[packs.security_policy.settings]`): which addresses are never blocked
//! (fail2ban's `ignoreip`) and how bans grow for repeat offenders (`bantime.increment`).

use valhalla_sdk::prelude::*;

use crate::values::{Net, parse_nets};

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct Settings {
    /// addresses and networks the guard never blocks by address (loopback by default, so an
    /// operator on the machine cannot lock themselves out)
    pub never_block: Vec<String>,
    pub ban_increment: Increment,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            never_block: vec!["127.0.0.0/8".into(), "::1".into()],
            ban_increment: Increment::default(),
        }
    }
}

/// Repeat offenders' bans: each repeat multiplies the duration by `factor`, up to
/// `max_seconds`; a value not blocked for `forget_after_seconds` starts again.
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct Increment {
    pub enabled: bool,
    pub factor: f64,
    pub max_seconds: i64,
    pub forget_after_seconds: i64,
}

impl Default for Increment {
    fn default() -> Self {
        Self {
            enabled: true,
            factor: 2.0,
            max_seconds: 30 * 86_400,
            forget_after_seconds: 7 * 86_400,
        }
    }
}

impl Increment {
    /// The ban for the `offense`th time (1: the first) of a `base`-second ban.
    pub fn escalate(&self, base: i64, offense: i64) -> i64 {
        if !self.enabled || offense <= 1 {
            return base;
        }
        let cap = self.max_seconds.max(base);
        let mut grown = base as f64;
        // past 64 doublings every cap is reached
        for _ in 1..offense.min(64) {
            grown *= self.factor.max(1.0);
            if !grown.is_finite() || grown >= cap as f64 {
                return cap;
            }
        }
        grown as i64
    }
}

impl Settings {
    pub fn load() -> Result<Self, Problem> {
        host::settings::<Self>()
    }

    pub fn never_block(&self) -> Result<Vec<Net>, Problem> {
        parse_nets(&self.never_block)
            .map_err(|m| Problem::unavailable(format!("the never_block setting: {m}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bans_grow_per_repeat_up_to_the_cap() {
        let inc = Increment::default();
        assert_eq!(inc.escalate(3_600, 1), 3_600);
        assert_eq!(inc.escalate(3_600, 2), 7_200);
        assert_eq!(inc.escalate(3_600, 3), 14_400);
        assert_eq!(inc.escalate(3_600, 100), 30 * 86_400);
        let off = Increment { enabled: false, ..Increment::default() };
        assert_eq!(off.escalate(3_600, 5), 3_600);
        // a base longer than the cap is kept
        let small = Increment { max_seconds: 60, ..Increment::default() };
        assert_eq!(small.escalate(3_600, 2), 3_600);
    }
}
