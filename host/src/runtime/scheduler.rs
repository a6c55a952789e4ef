//! Scheduled work: every pack whose manifest declares a schedule gets `tick()` at its interval,
//! one at a time (a tick never overlaps the previous one: the next waits a full interval after
//! it ends), with the longer tick deadline (`runtime.tick_deadline_ms`). A tick that traps,
//! runs out of time or memory, or reports a failure is logged — to the host's log and, like
//! the pack's own lines, to the system log under the pack's category — and the next one runs
//! at the next interval as usual.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{CallContext, LoadedPack};
use crate::capabilities::log::LogView;
use crate::runtime::bindings::valhalla::pack::log::{Host as _, Level};

/// Shortest interval a pack may ask for.
const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// Start a ticker per scheduled pack; each stops when `stop` turns true.
pub fn start(packs: &[Arc<LoadedPack>], stop: &watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
    packs
        .iter()
        .filter_map(|pack| {
            let interval = Duration::from_millis(pack.manifest.schedule.as_ref()?.interval_ms)
                .max(MIN_INTERVAL);
            let pack = Arc::clone(pack);
            let mut stop = stop.clone();
            tracing::info!(
                pack = pack.name(),
                interval_ms = interval.as_millis() as u64,
                "scheduled"
            );
            Some(tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(interval) => {}
                        _ = stop.wait_for(|s| *s) => break,
                    }
                    let ticked = pack.tick().await;
                    pack.metrics().ticked(matches!(ticked, Ok(Ok(_))));
                    match ticked {
                        Ok(Ok(report)) if report.is_empty() => {}
                        Ok(Ok(report)) => tracing::info!(pack = pack.name(), %report, "tick"),
                        Ok(Err(message)) => {
                            failed(&pack, format!("tick reported a failure: {message}"))
                        }
                        Err(e) => failed(&pack, format!("tick failed: {e}")),
                    }
                }
            }))
        })
        .collect()
}

/// Log a failed tick as the pack's own error line (the host's log, and the system log when
/// that pack is on): a tick has no client to tell.
fn failed(pack: &LoadedPack, message: String) {
    let call = CallContext::default();
    let mut view = LogView {
        log: &pack.ctx.capabilities.log,
        call: &call,
    };
    let fields = vec![("source".to_string(), "scheduler".to_string())];
    view.log(Level::Error, message, fields);
}
