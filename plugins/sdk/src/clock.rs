//! Time and ids: RFC 3339 UTC timestamps from the host clock, UUID v7 ids.

use crate::bindings::valhalla::pack::host as host_api;

/// Milliseconds since the Unix epoch, from the host.
pub fn now_ms() -> i64 {
    host_api::now_ms()
}

/// Now as RFC 3339 UTC with milliseconds: `2026-11-23T08:47:31.123Z`. Fixed width, so the
/// text sorts in time order.
pub fn now_rfc3339() -> String {
    rfc3339(now_ms())
}

/// `ms` since the epoch as RFC 3339 UTC with milliseconds.
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A new UUID v7 (time-ordered) as text.
pub fn new_id() -> String {
    let ms = now_ms().max(0) as u64;
    let mut rand = [0u8; 10];
    fill_random(&mut rand);
    let mut b = [0u8; 16];
    b[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    b[6..].copy_from_slice(&rand);
    b[6] = (b[6] & 0x0f) | 0x70; // version 7
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

fn fill_random(buf: &mut [u8]) {
    // std's RandomState is seeded from the platform's secure random source (wasi:random here);
    // hashing a counter with fresh states gives unpredictable bytes without another dependency.
    use std::hash::{BuildHasher, RandomState};
    for (i, chunk) in buf.chunks_mut(8).enumerate() {
        let v = RandomState::new().hash_one(i).to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_795_423_651_123), "2026-11-23T08:47:31.123Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }
}
