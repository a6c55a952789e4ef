//! Scheduled work: every pack whose manifest declares a schedule gets `tick()` at its interval,
//! one at a time (a tick never overlaps the previous one), with the longer tick deadline.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::LoadedPack;

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
                    match pack.tick().await {
                        Ok(Ok(report)) if report.is_empty() => {}
                        Ok(Ok(report)) => tracing::info!(pack = pack.name(), %report, "tick"),
                        Ok(Err(message)) => {
                            tracing::warn!(pack = pack.name(), %message, "tick reported a failure")
                        }
                        Err(e) => tracing::error!(pack = pack.name(), error = %e, "tick failed"),
                    }
                }
            }))
        })
        .collect()
}
