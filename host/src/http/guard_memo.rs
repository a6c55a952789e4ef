//! Memoized guard decisions: a guard that lets a request proceed may say its decision holds
//! for every request equal to this one in some inputs (the credential, the principal, the
//! client address) while one entry of its cache stays the write it saw (`memoize-decision`).
//! The chain then answers such requests without an instance. The entry is the pack's own
//! record of what it decided from (api_clients: the key's principal; rate_limits: the rule
//! set), so whatever invalidates that record — a deactivated or rotated key, a new rule, its
//! TTL — sends the next request to the guard again.
//!
//! A counting guard (rate_limits) memoizes the counters a request is counted against
//! instead: each reuse adds 1 to each with the shared counters (`counters`: one UPSERT for all
//! of them on PostgreSQL, counted with every replica; in memory on SQLite) and answers as the
//! rate limit does (429 past a limit, `RateLimit-*` headers otherwise), so counts stay exact
//! under concurrency with no instance.
//!
//! The inputs are hashed (SHA-256) into the memo's key, so no credential is kept in memory
//! beyond the request; the table is bounded and starts afresh when full.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use sha2::{Digest, Sha256};

use crate::capabilities::cache::{Cache, Counted, MemoInput, MemoRequest};
use crate::capabilities::counters::SharedCounters;
use crate::runtime::bindings::{Principal, Request};

/// Memos kept per guard at most; past this the table starts afresh.
const MAX_MEMOS: usize = 10_000;
/// Distinct input sets per guard at most (a guard uses one or two).
const MAX_INPUT_SETS: usize = 4;

/// What a reused decision does: attach a principal (maybe) and add response headers.
#[derive(Debug, Clone)]
pub struct Memoized {
    pub principal: Option<Principal>,
    pub headers: Vec<(String, String)>,
}

struct Stored {
    valid_while: Option<(String, u64)>,
    decision: Memoized,
    counters: Vec<Counted>,
}

/// What a reused memo answers.
#[derive(Debug, Clone)]
pub enum Reuse {
    /// go on, as the memoized decision did (with the counters' headers, if it counts)
    Proceed(Memoized),
    /// a counter is past its limit: refuse with its standing
    Limited(Standing),
}

/// Where one counter stands after this request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standing {
    pub limit: i64,
    pub count: i64,
    /// whole seconds until its window resets, rounded up, at least 1
    pub reset_seconds: u64,
}

impl Standing {
    fn remaining(&self) -> i64 {
        (self.limit - self.count).max(0)
    }

    fn exceeded(&self) -> bool {
        self.count > self.limit
    }

    /// `RateLimit-Limit`, `-Remaining`, `-Reset`.
    pub fn headers(&self) -> Vec<(String, String)> {
        vec![
            ("RateLimit-Limit".into(), self.limit.to_string()),
            ("RateLimit-Remaining".into(), self.remaining().to_string()),
            ("RateLimit-Reset".into(), self.reset_seconds.to_string()),
        ]
    }
}

/// One guard's memoized decisions.
pub struct Memos {
    cache: Arc<Cache>,
    counters: Arc<SharedCounters>,
    input_sets: RwLock<Vec<Vec<MemoInput>>>,
    entries: RwLock<HashMap<[u8; 32], Stored>>,
}

impl Memos {
    pub fn new(cache: Arc<Cache>, counters: Arc<SharedCounters>) -> Self {
        Self {
            cache,
            counters,
            input_sets: RwLock::new(Vec::new()),
            entries: RwLock::new(HashMap::new()),
        }
    }

    /// The decision memoized for a request like `request`, if it still holds; a counting
    /// memo counts this request first.
    pub async fn lookup(
        &self,
        request: &Request,
        credentials: &[(String, String)],
    ) -> Option<Reuse> {
        let (decision, counters) = {
            let sets = self.input_sets.read().ok()?;
            let entries = self.entries.read().ok()?;
            sets.iter().find_map(|inputs| {
                let stored = entries.get(&key(inputs, request, credentials))?;
                let holds = match &stored.valid_while {
                    None => true,
                    Some((entry, stamp)) => self.cache.stamp(entry) == Some(*stamp),
                };
                holds.then(|| (stored.decision.clone(), stored.counters.clone()))
            })?
        };
        if counters.is_empty() {
            return Some(Reuse::Proceed(decision));
        }
        self.count(&counters).await.map(|standing| match standing {
            Err(blocking) => Reuse::Limited(blocking),
            Ok(tightest) => Reuse::Proceed(Memoized {
                principal: decision.principal,
                headers: tightest.map(|t| t.headers()).unwrap_or_default(),
            }),
        })
    }

    /// Count one request against every counter: `Err` with the exceeded one that resets
    /// last, else `Ok` with the one with the fewest left (ties: the later reset); `None` when
    /// the counters cannot be reached (the guard is called instead).
    async fn count(&self, counters: &[Counted]) -> Option<Result<Option<Standing>, Standing>> {
        let mut tightest: Option<Standing> = None;
        let mut blocking: Option<Standing> = None;
        let keys: Vec<(&str, std::time::Duration)> = counters
            .iter()
            .map(|c| (c.key.as_str(), c.window))
            .collect();
        let counted = match self.counters.incr_each(&keys).await {
            Ok(counted) => counted,
            Err(e) => {
                tracing::warn!(error = %e, "counting memo: counters unavailable, asking the guard");
                return None;
            }
        };
        for (counter, (count, reset)) in counters.iter().zip(counted) {
            let reset_ms = u64::try_from(reset.as_millis()).unwrap_or(u64::MAX);
            let standing = Standing {
                limit: counter.limit,
                count,
                reset_seconds: reset_ms.div_ceil(1000).max(1),
            };
            if standing.exceeded() {
                if blocking
                    .as_ref()
                    .is_none_or(|b| standing.reset_seconds > b.reset_seconds)
                {
                    blocking = Some(standing);
                }
            } else if tightest.as_ref().is_none_or(|t| {
                (
                    standing.remaining(),
                    std::cmp::Reverse(standing.reset_seconds),
                ) < (t.remaining(), std::cmp::Reverse(t.reset_seconds))
            }) {
                tightest = Some(standing);
            }
        }
        Some(match blocking {
            Some(b) => Err(b),
            None => Ok(tightest),
        })
    }

    /// Remember `decision` for requests like `request` (as the guard saw it), as `memo` asks.
    pub fn store(
        &self,
        memo: MemoRequest,
        request: &Request,
        credentials: &[(String, String)],
        decision: Memoized,
    ) {
        let mut inputs = memo.inputs;
        inputs.sort_by_key(|i| *i as u8);
        inputs.dedup();
        let key = key(&inputs, request, credentials);
        if let Ok(mut sets) = self.input_sets.write()
            && !sets.contains(&inputs)
        {
            if sets.len() >= MAX_INPUT_SETS {
                return;
            }
            sets.push(inputs);
        }
        if let Ok(mut entries) = self.entries.write() {
            if entries.len() >= MAX_MEMOS {
                entries.clear();
            }
            entries.insert(
                key,
                Stored {
                    valid_while: memo.valid_while,
                    decision,
                    counters: memo.counters,
                },
            );
        }
    }
}

/// SHA-256 over the inputs' values, each tagged and length-prefixed (no two different
/// requests hash the same input bytes).
fn key(inputs: &[MemoInput], request: &Request, credentials: &[(String, String)]) -> [u8; 32] {
    let mut h = Sha256::new();
    // a tag, a length (of the bytes that follow, or a count of the items that follow), bytes
    let mut put = |tag: u8, n: usize, bytes: &[u8]| {
        h.update([tag]);
        h.update((n as u64).to_le_bytes());
        h.update(bytes);
    };
    for input in inputs {
        match input {
            MemoInput::Credentials => {
                put(b'c', credentials.len(), &[]);
                // header names arrive lower-case (as the WIT request carries them)
                for (name, value) in credentials {
                    put(b'n', name.len(), name.as_bytes());
                    put(b'v', value.len(), value.as_bytes());
                }
            }
            MemoInput::Principal => match &request.principal {
                None => put(b'-', 0, &[]),
                Some(p) => {
                    put(b'p', p.id.len(), p.id.as_bytes());
                    put(b'm', p.name.len(), p.name.as_bytes());
                    put(b'r', p.roles.len(), &[]);
                    for role in &p.roles {
                        put(b'o', role.len(), role.as_bytes());
                    }
                }
            },
            MemoInput::ClientIp => put(b'i', request.client_ip.len(), request.client_ip.as_bytes()),
        }
    }
    h.finalize().into()
}

#[cfg(test)]
#[path = "guard_memo_tests.rs"]
mod tests;
