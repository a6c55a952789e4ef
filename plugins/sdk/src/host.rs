//! What the host knows: routes, loaded packs, this pack's settings, build info, and the id
//! of the host process (who holds a job's lease: [`crate::jobs`]).

use crate::alloc_prelude::*;

use serde::de::DeserializeOwned;

use crate::bindings::valhalla::pack::host as host_api;
use crate::problem::Problem;
pub use host_api::{PackInfo, RouteInfo};

/// Every route the host serves, of every pack.
pub fn routes() -> Vec<RouteInfo> {
    host_api::routes()
}

/// Every pack the host loaded.
pub fn packs() -> Vec<PackInfo> {
    host_api::packs()
}

/// This pack's `[packs.<name>.settings]`, decoded as `T`.
pub fn settings<T: DeserializeOwned>() -> Result<T, Problem> {
    serde_json::from_str(&host_api::settings())
        .map_err(|e| Problem::internal(format!("the pack's settings are invalid: {e}")))
}

/// Settings that fall back rather than fail: a value out of range takes its default (the
/// pack still serves), and the log says which and why.
pub trait CheckedSettings: DeserializeOwned + Default {
    /// These settings with each bad value replaced by its default, and what was wrong with
    /// each (`"batch_size must be 1 to 5000"`).
    fn checked(self) -> (Self, Vec<String>);
}

/// This pack's settings as `T`, checked: settings that do not decode at all give the
/// defaults; every problem is a warning in the log, prefixed with `what` (the pack's name).
pub fn checked_settings<T: CheckedSettings>(what: &str) -> T {
    let (settings, problems) = match settings::<T>() {
        Ok(s) => s.checked(),
        Err(p) => (T::default(), vec![p.detail]),
    };
    for problem in problems {
        crate::log::warn(&format!("{what} settings: {problem}; using the default"));
    }
    settings
}

/// The host's build information as JSON.
pub fn build_info() -> serde_json::Value {
    serde_json::from_str(&host_api::build_info()).unwrap_or(serde_json::Value::Null)
}

/// The id of the host process serving this call: a random UUID made when it started, so
/// two replicas, or one process and the same after a restart, never share it. Read from the
/// build information once per instance.
pub fn instance_id() -> String {
    static INSTANCE: OnceText = OnceText::new();
    INSTANCE
        .get_or_init(|| build_info()["instance"].as_str().map(str::to_string).unwrap_or_default())
}

/// A text set once and read many times (a pack instance runs one call at a time; off wasm,
/// in tests, a race makes one value and drops the other).
struct OnceText(core::sync::atomic::AtomicPtr<String>);

impl OnceText {
    const fn new() -> Self {
        Self(core::sync::atomic::AtomicPtr::new(core::ptr::null_mut()))
    }

    fn get_or_init(&self, init: impl FnOnce() -> String) -> String {
        use core::sync::atomic::Ordering;
        let mut current = self.0.load(Ordering::Acquire);
        if current.is_null() {
            let made = Box::into_raw(Box::new(init()));
            current = match self.0.compare_exchange(
                core::ptr::null_mut(),
                made,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => made,
                Err(theirs) => {
                    // SAFETY: `made` came from `Box::into_raw` above and was never shared.
                    drop(unsafe { Box::from_raw(made) });
                    theirs
                }
            };
        }
        // SAFETY: a pointer stored here came from `Box::into_raw` and is never freed.
        unsafe { (*current).clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::OnceText;

    #[test]
    fn a_once_text_is_made_once() {
        let once = OnceText::new();
        assert_eq!(once.get_or_init(|| "a".into()), "a");
        assert_eq!(once.get_or_init(|| "b".into()), "a");
    }
}
