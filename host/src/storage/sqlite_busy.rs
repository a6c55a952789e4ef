//! `SQLITE_BUSY`: another process (a second replica on the file, an operator's `sqlite3`
//! shell, a backup) holds the lock a statement needs. The host's connections retry with a
//! backoff (1 ms, doubling, at most [`MAX_PAUSE`]) until the lock is free, the busy bound
//! (`database.busy_timeout_ms`) passes, or the caller's deadline does; then the statement
//! fails with `SQLITE_BUSY`, which the caller sees as "database unavailable" (503). SQLite's
//! own `busy_timeout` would wait out its bound whatever the caller's deadline.

use std::ffi::{c_int, c_void};
use std::ptr::NonNull;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::ffi;

use super::sqlite_sandbox::ConnSandbox;

/// The longest pause between two tries.
const MAX_PAUSE: Duration = Duration::from_millis(50);

/// One connection's busy handler state.
struct Busy {
    sandbox: Arc<ConnSandbox>,
    bound: Duration,
    /// when the current wait for a lock started
    since: Mutex<Instant>,
}

impl Busy {
    /// Whether to try again after the `count`th failed try (SQLite counts from 0 for each
    /// lock it waits for), pausing first.
    fn again(&self, count: c_int) -> bool {
        let now = Instant::now();
        let mut since = self.since.lock().unwrap_or_else(|p| p.into_inner());
        if count == 0 {
            *since = now;
        }
        let left = self.bound.saturating_sub(now.duration_since(*since));
        drop(since);
        if left.is_zero() || self.sandbox.past_deadline() {
            return false;
        }
        std::thread::sleep(pause(count).min(left));
        true
    }
}

/// The pause after the `count`th failed try.
fn pause(count: c_int) -> Duration {
    let shift = u32::try_from(count).unwrap_or(0).min(6);
    Duration::from_millis(1 << shift).min(MAX_PAUSE)
}

extern "C" fn on_busy(user: *mut c_void, count: c_int) -> c_int {
    // SAFETY: `user` is the `Busy` that `install` leaked for the connection's life.
    let busy = unsafe { &*(user as *const Busy) };
    c_int::from(busy.again(count))
}

/// Install the handler on `db`, whose statements' deadlines `sandbox` holds.
///
/// # Safety
/// `db` must be an open connection not used by another thread during this call. As with the
/// sandbox, the handler's small state lives as long as the process (one per opened
/// connection).
pub unsafe fn install(db: NonNull<ffi::sqlite3>, sandbox: Arc<ConnSandbox>, bound: Duration) {
    let busy = Box::new(Busy {
        sandbox,
        bound,
        since: Mutex::new(Instant::now()),
    });
    let user = Box::into_raw(busy) as *mut c_void;
    // SAFETY: `db` is open (the caller's promise); `user` stays valid for ever.
    unsafe {
        ffi::sqlite3_busy_handler(db.as_ptr(), Some(on_busy), user);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_a_cap() {
        let pauses: Vec<u128> = (0..9).map(|c| pause(c).as_millis()).collect();
        assert_eq!(pauses, [1, 2, 4, 8, 16, 32, 50, 50, 50]);
    }
}
