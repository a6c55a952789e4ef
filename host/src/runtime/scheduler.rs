//! Scheduled work: every pack whose manifest declares a schedule gets `tick()` at its interval,
//! one at a time (a tick never overlaps the previous one: the next waits a full interval after
//! it ends), with the longer tick deadline (`runtime.tick_deadline_ms`). A tick that traps,
//! runs out of time or memory, or reports a failure is logged — to the host's log and, like
//! the pack's own lines, to the system log under the pack's category — and the next one runs
//! at the next interval as usual. A reload re-syncs the tickers with the new pack set. On
//! PostgreSQL a tick runs on the replica holding the pack's lease ([`super::tick_lease`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::tick_lease::TickLeases;
use super::{CallContext, LoadedPack};
use crate::capabilities::log::LogView;
use crate::runtime::bindings::valhalla::pack::log::{Host as _, Level};

/// Shortest interval a pack may ask for.
const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// The tickers of the packs served now. A reload hands it the new set ([`Scheduler::sync`]):
/// a pack loaded anew gets a ticker; one unloaded or replaced has its ticker stopped — a tick
/// in progress finishes — and a replacement's first tick waits for that one to end, so ticks
/// of one pack never overlap across a reload either.
pub struct Scheduler {
    shutdown: watch::Receiver<bool>,
    /// across replicas on PostgreSQL: one tick per interval cluster-wide
    leases: Option<TickLeases>,
    running: HashMap<String, Ticker>,
    /// tickers of unloaded packs, perhaps finishing a tick
    retiring: Vec<JoinHandle<()>>,
}

struct Ticker {
    pack: Arc<LoadedPack>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Scheduler {
    /// Tickers for the scheduled `packs`; all stop when `shutdown` turns true. With `leases`
    /// a tick runs only on the replica that holds the pack's lease.
    pub fn start(
        packs: &[Arc<LoadedPack>],
        shutdown: &watch::Receiver<bool>,
        leases: Option<TickLeases>,
    ) -> Self {
        let mut scheduler = Self {
            shutdown: shutdown.clone(),
            leases,
            running: HashMap::new(),
            retiring: Vec::new(),
        };
        scheduler.sync(packs);
        scheduler
    }

    /// Make the tickers match `packs`: the same loaded pack keeps its ticker.
    pub fn sync(&mut self, packs: &[Arc<LoadedPack>]) {
        let mut previous = std::mem::take(&mut self.running);
        for pack in packs {
            let Some(schedule) = &pack.manifest.schedule else {
                continue;
            };
            let interval = Duration::from_millis(schedule.interval_ms).max(MIN_INTERVAL);
            let before = previous.remove(pack.name());
            let after = match before {
                Some(t) if Arc::ptr_eq(&t.pack, pack) => {
                    self.running.insert(pack.name().to_string(), t);
                    continue;
                }
                Some(t) => Some(t.stop_now()),
                None => None,
            };
            tracing::info!(
                pack = pack.name(),
                interval_ms = interval.as_millis() as u64,
                "scheduled"
            );
            let (stop, stopped) = watch::channel(false);
            let task = tokio::spawn(run(
                Ticking {
                    pack: Arc::clone(pack),
                    interval,
                    // a replica's own upkeep (its cache) runs on every replica
                    leases: self.leases.clone().filter(|_| !schedule.every_replica),
                },
                after,
                stopped,
                self.shutdown.clone(),
            ));
            let ticker = Ticker {
                pack: Arc::clone(pack),
                stop,
                task,
            };
            self.running.insert(pack.name().to_string(), ticker);
        }
        for (name, gone) in previous {
            tracing::info!(pack = %name, "unscheduled");
            self.retiring.push(gone.stop_now());
        }
        self.retiring.retain(|t| !t.is_finished());
    }

    /// Wait for every ticker to end (after the shutdown signal).
    pub async fn join(self) {
        for (_, ticker) in self.running {
            let _ = ticker.task.await;
        }
        for task in self.retiring {
            let _ = task.await;
        }
    }
}

impl Ticker {
    /// Ask it to stop after the tick in progress, if any; the handle ends when it has.
    fn stop_now(self) -> JoinHandle<()> {
        let _ = self.stop.send(true);
        self.task
    }
}

/// What one ticker runs.
struct Ticking {
    pack: Arc<LoadedPack>,
    interval: Duration,
    leases: Option<TickLeases>,
}

/// One pack's ticks, one at a time, until it is stopped or the host shuts down; first waiting
/// for the ticker it replaces (`after`) to end.
async fn run(
    ticking: Ticking,
    after: Option<JoinHandle<()>>,
    mut stop: watch::Receiver<bool>,
    mut shutdown: watch::Receiver<bool>,
) {
    let Ticking {
        pack,
        interval,
        leases,
    } = ticking;
    if let Some(previous) = after {
        let _ = previous.await;
    }
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.wait_for(|s| *s) => break,
            _ = shutdown.wait_for(|s| *s) => break,
        }
        let held = match &leases {
            None => None,
            Some(leases) => match leases.try_hold(pack.name(), interval).await {
                Ok(Some(held)) => Some(held),
                // another replica ticks this pack
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(pack = pack.name(), error = %e, "tick lease unavailable: tick skipped");
                    continue;
                }
            },
        };
        tick_once(&pack).await;
        if let (Some(held), Some(leases)) = (held, &leases) {
            held.release(leases, interval).await;
        }
    }
}

async fn tick_once(pack: &LoadedPack) {
    let ticked = pack.tick().await;
    pack.metrics().ticked(matches!(ticked, Ok(Ok(_))));
    match ticked {
        Ok(Ok(report)) if report.is_empty() => {}
        Ok(Ok(report)) => tracing::info!(pack = pack.name(), %report, "tick"),
        Ok(Err(message)) => failed(pack, format!("tick reported a failure: {message}")),
        Err(e) => failed(pack, format!("tick failed: {e}")),
    }
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
