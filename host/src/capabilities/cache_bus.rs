//! Cache invalidations across replicas (PostgreSQL `LISTEN/NOTIFY`): every `delete` and
//! `delete-prefix` a pack makes is published on the `valhalla_cache` channel, and each replica
//! applies what the others publish to its own cache. A request that invalidated something is
//! answered only once its notifications are sent ([`CacheBus::settle`]), so a client's next
//! request to another replica finds the entry gone rather than waiting for a TTL. If the
//! listening connection drops, the replica may have missed invalidations: it reconnects,
//! clears its whole cache, and says so in its log, `/metrics` and readiness.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::{mpsc, watch};

use super::shared_cache::Cache;

/// The notification channel.
pub const CHANNEL: &str = "valhalla_cache";
/// PostgreSQL refuses payloads of 8000 bytes or more.
const MAX_PAYLOAD: usize = 7_000;
/// How long a request waits for its invalidations to go out.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(2);

/// One invalidation (keys are namespaced per pack already).
#[derive(Debug, Clone)]
pub enum Change {
    Key(String),
    Prefix(String),
}

/// A notification's payload.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Payload {
    /// the publishing replica (it applied the change already)
    o: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    k: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    p: Vec<String>,
}

impl Payload {
    fn len(&self) -> usize {
        self.o.len()
            + self
                .k
                .iter()
                .chain(&self.p)
                .map(|s| entry_size(s))
                .sum::<usize>()
            + 24
    }
}

/// This replica's end of the bus.
pub struct CacheBus {
    tx: mpsc::UnboundedSender<(u64, Change)>,
    /// invalidations handed to the publisher so far
    published: AtomicU64,
    /// the last one sent
    sent: watch::Receiver<u64>,
    /// the listener is connected (readiness)
    listening: Arc<AtomicBool>,
}

impl CacheBus {
    /// Publish this replica's invalidations and apply the others' to `cache`, as replica
    /// `origin`; answers once the listener is connected.
    pub async fn start(
        pool: PgPool,
        cache: Arc<Cache>,
        origin: &str,
    ) -> Result<Arc<Self>, sqlx::Error> {
        let listener = listen(&pool).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        let (sent_tx, sent) = watch::channel(0);
        let listening = Arc::new(AtomicBool::new(true));
        tokio::spawn(publish(pool.clone(), origin.to_string(), rx, sent_tx));
        tokio::spawn(apply(
            pool,
            listener,
            Arc::clone(&cache),
            origin.to_string(),
            Arc::clone(&listening),
        ));
        Ok(Arc::new(Self {
            tx,
            published: AtomicU64::new(0),
            sent,
            listening,
        }))
    }

    /// Queue `change` for the other replicas.
    pub fn publish(&self, change: Change) {
        let seq = self.published.fetch_add(1, Ordering::SeqCst) + 1;
        let _ = self.tx.send((seq, change));
    }

    /// How many invalidations were published so far (before a call, for [`Self::settle`]).
    pub fn mark(&self) -> u64 {
        self.published.load(Ordering::SeqCst)
    }

    /// Wait until everything published since `mark` has been sent (at most a bounded time).
    pub async fn settle(&self, mark: u64) {
        let target = self.published.load(Ordering::SeqCst);
        if target <= mark {
            return;
        }
        let mut sent = self.sent.clone();
        let done = tokio::time::timeout(SETTLE_TIMEOUT, sent.wait_for(|s| *s >= target)).await;
        if done.is_err() {
            tracing::warn!("cache invalidations not yet sent to the other replicas");
        }
    }

    /// Whether this replica hears the others' invalidations now.
    pub fn listening(&self) -> bool {
        self.listening.load(Ordering::Relaxed)
    }
}

async fn listen(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

/// Send what is queued, in as few notifications as fit.
async fn publish(
    pool: PgPool,
    origin: String,
    mut rx: mpsc::UnboundedReceiver<(u64, Change)>,
    sent: watch::Sender<u64>,
) {
    while let Some(first) = rx.recv().await {
        let mut last = first.0;
        let mut changes = vec![first.1];
        while let Ok((seq, change)) = rx.try_recv() {
            last = seq;
            changes.push(change);
        }
        for payload in payloads(&origin, changes) {
            let Ok(text) = serde_json::to_string(&payload) else {
                continue;
            };
            let mut attempt = 0;
            while let Err(e) = sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANNEL)
                .bind(&text)
                .execute(&pool)
                .await
            {
                attempt += 1;
                if attempt == 3 {
                    tracing::error!(error = %e, "cache invalidation not sent: other replicas keep their entries until they expire");
                    crate::metrics::cache_bus("publish_failed");
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
            }
        }
        let _ = sent.send(last);
    }
}

/// A key's share of a payload: quotes, comma, and the namespace separator escaped as
/// `\u001f`.
fn entry_size(key: &str) -> usize {
    key.len() + 3 + 5 * key.matches('\u{1f}').count()
}

/// Group `changes` into payloads under PostgreSQL's size limit.
fn payloads(origin: &str, changes: Vec<Change>) -> Vec<Payload> {
    let mut out = Vec::new();
    let mut current = Payload {
        o: origin.to_string(),
        ..Payload::default()
    };
    for change in changes {
        let size = match &change {
            Change::Key(k) | Change::Prefix(k) => entry_size(k),
        };
        if current.len() + size > MAX_PAYLOAD && !(current.k.is_empty() && current.p.is_empty()) {
            out.push(std::mem::replace(
                &mut current,
                Payload {
                    o: origin.to_string(),
                    ..Payload::default()
                },
            ));
        }
        match change {
            Change::Key(k) => current.k.push(k),
            Change::Prefix(p) => current.p.push(p),
        }
    }
    if !(current.k.is_empty() && current.p.is_empty()) {
        out.push(current);
    }
    out
}

/// Apply the other replicas' invalidations; on a lost connection, reconnect and clear.
async fn apply(
    pool: PgPool,
    mut listener: PgListener,
    cache: Arc<Cache>,
    origin: String,
    listening: Arc<AtomicBool>,
) {
    loop {
        match listener.try_recv().await {
            Ok(Some(n)) => match serde_json::from_str::<Payload>(n.payload()) {
                Ok(p) if p.o == origin => {}
                Ok(p) => {
                    for k in &p.k {
                        cache.delete(k);
                    }
                    for prefix in &p.p {
                        cache.delete_prefix(prefix);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "unreadable cache invalidation ignored"),
            },
            Ok(None) | Err(_) => {
                listening.store(false, Ordering::Relaxed);
                crate::metrics::cache_bus("disconnected");
                tracing::warn!(
                    "cache invalidation listener lost its connection: reconnecting, then clearing this replica's cache"
                );
                listener = reconnect(&pool).await;
                cache.clear();
                listening.store(true, Ordering::Relaxed);
                tracing::info!("cache invalidation listener reconnected; cache cleared");
            }
        }
    }
}

async fn reconnect(pool: &PgPool) -> PgListener {
    let mut wait = Duration::from_millis(100);
    loop {
        match listen(pool).await {
            Ok(l) => return l,
            Err(e) => {
                tracing::warn!(error = %e, "cache invalidation listener: cannot reconnect yet");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_stay_under_the_limit_and_keep_every_change() {
        let changes: Vec<Change> = (0..2_000)
            .map(|i| {
                if i % 3 == 0 {
                    Change::Prefix(format!("pack\u{1f}prefix:{i}:"))
                } else {
                    Change::Key(format!("pack\u{1f}key:{i}"))
                }
            })
            .collect();
        let out = payloads("replica", changes);
        assert!(out.len() > 1);
        let mut n = 0;
        for p in &out {
            let text = serde_json::to_string(p).unwrap();
            assert!(text.len() < 8_000, "{} bytes", text.len());
            n += p.k.len() + p.p.len();
        }
        assert_eq!(n, 2_000);
    }
}
