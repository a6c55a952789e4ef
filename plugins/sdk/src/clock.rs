//! Time and ids: RFC 3339 UTC timestamps from the host clock, UUID v7 ids.

use crate::alloc_prelude::*;

use crate::bindings::valhalla::pack::host as host_api;

/// Milliseconds since the Unix epoch, from the host.
pub fn now_ms() -> i64 {
    host_api::now_ms()
}

/// Microseconds since the Unix epoch, from the host.
pub fn now_us() -> i64 {
    host_api::now_us()
}

/// Now as RFC 3339 UTC with microseconds: `2026-11-23T08:47:31.123456Z`. Every timestamp the
/// SDK writes has this one fixed width, so the text sorts in time order.
pub fn now_rfc3339() -> String {
    rfc3339_us(now_us())
}

/// `ms` since the epoch as RFC 3339 UTC (microsecond width).
pub fn rfc3339(ms: i64) -> String {
    rfc3339_us(ms.saturating_mul(1000))
}

/// `us` since the epoch as RFC 3339 UTC with microseconds.
pub fn rfc3339_us(us: i64) -> String {
    let secs = us.div_euclid(1_000_000);
    let micros = us.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// A duration as CrowdSec's decisions and fail2ban write it — whole numbers with a unit each
/// (`90s`, `30m`, `4h`, `1h30m`, `2d`, `1w`) adding up to more than nothing — in seconds.
pub fn parse_duration(text: &str) -> Result<i64, &'static str> {
    const WHAT: &str = "must be a duration like `90s`, `30m`, `4h`, `1h30m`, `2d` or `1w`";
    let (mut total, mut number) = (0i64, None::<i64>);
    for c in text.trim().chars() {
        if let Some(d) = c.to_digit(10) {
            let n = number.unwrap_or(0).checked_mul(10).and_then(|n| n.checked_add(d.into()));
            number = Some(n.ok_or(WHAT)?);
            continue;
        }
        let unit = match c {
            'w' => 604_800,
            'd' => 86_400,
            'h' => 3_600,
            'm' => 60,
            's' => 1,
            _ => return Err(WHAT),
        };
        let part = number.take().ok_or(WHAT)?.checked_mul(unit).ok_or(WHAT)?;
        total = total.checked_add(part).ok_or(WHAT)?;
    }
    if number.is_some() || total <= 0 {
        return Err(WHAT);
    }
    Ok(total)
}

/// Parse RFC 3339 (`2026-11-23T08:47:31Z`, `…T08:47:31.5+01:00`) into ms since the epoch.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let s = text.get(from..from + len)?;
        s.bytes().all(|c| c.is_ascii_digit()).then(|| s.parse().ok())?
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (y, mo, d) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (h, mi, s) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let mut i = 19;
    let mut millis = 0i64;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return None;
        }
        let frac = &text[start..i.min(start + 3)];
        millis = frac.parse::<i64>().ok()? * 10i64.pow(3 - frac.len() as u32);
    }
    let offset_min = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(sign @ (b'+' | b'-')) if i + 6 == b.len() && b[i + 3] == b':' => {
            let m = num(i + 1, 2)? * 60 + num(i + 4, 2)?;
            if *sign == b'+' { m } else { -m }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo as u32, d as u32);
    Some(((days * 86_400 + h * 3600 + mi * 60 + s) - offset_min * 60) * 1000 + millis)
}

/// (year, month, day) to days since 1970-01-01 (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
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

/// A new UUID v7 (time-ordered) as text. Its 12 bits after the version carry the fraction
/// of the millisecond (RFC 9562's method 3), so ids made a microsecond apart sort in order —
/// keyset pages (newest first by id) depend on it.
pub fn new_id() -> String {
    let us = now_us().max(0) as u64;
    let ms = us / 1000;
    let fraction = ((us % 1000) * 4096 / 1000) as u16;
    let mut rand = [0u8; 10];
    fill_random(&mut rand);
    let mut b = [0u8; 16];
    b[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    b[6..].copy_from_slice(&rand);
    b[6] = 0x70 | ((fraction >> 8) as u8 & 0x0f); // version 7, then the fraction
    b[7] = fraction as u8;
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

fn fill_random(buf: &mut [u8]) {
    crate::crypto::random_bytes(buf);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rfc3339() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2026-11-23T08:47:31.123Z"), Some(1_795_423_651_123));
        assert_eq!(parse_rfc3339("2026-11-23T09:47:31.1+01:00"), Some(1_795_423_651_100));
        assert_eq!(parse_rfc3339("2000-02-29T00:00:00Z"), Some(951_782_400_000));
        for bad in [
            "",
            "2026-11-23",
            "2026-13-01T00:00:00Z",
            "2026-11-23T08:47:31",
            "yesterday",
            "2026-11-23T08:47:31.Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
        let now = 1_795_423_651_123;
        assert_eq!(parse_rfc3339(&rfc3339(now)), Some(now));
    }

    #[test]
    fn formats_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(rfc3339(1_795_423_651_123), "2026-11-23T08:47:31.123000Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000000Z");
        assert_eq!(rfc3339_us(1_795_423_651_123_456), "2026-11-23T08:47:31.123456Z");
    }
}
