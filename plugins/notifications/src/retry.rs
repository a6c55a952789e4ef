//! What an attempt's answer means and when the next one goes: only 2xx is success; a 410 Gone
//! turns the channel off; network errors, timeouts, 408, 429 and 5xx are retried after the
//! schedule's wait (with jitter, and no sooner than the receiver's `Retry-After`); any other
//! answer (a redirect, which is never followed, or another 4xx) is final.

use valhalla_sdk::capability::Error;
use valhalla_sdk::outbound::Fetched;
use valhalla_sdk::prelude::*;

/// The longest text of an error or a receiver's answer kept in `last_error`.
const MAX_ERROR: usize = 500;
const MAX_EXCERPT: usize = 200;

/// What one attempt came to.
#[derive(Debug, PartialEq)]
pub(crate) enum Outcome {
    /// a 2xx
    Delivered { status: u16 },
    /// worth another attempt; `retry_after_s` is the receiver's `Retry-After`
    Retry { error: String, status: Option<u16>, retry_after_s: Option<i64> },
    /// 410 Gone: the receiver wants no more
    Gone,
    /// final: the message is dead
    Final { error: String, status: Option<u16> },
}

/// The outcome of `result`, an attempt's answer, at `now_ms`.
pub(crate) fn classify(result: Result<Fetched, Error>, now_ms: i64) -> Outcome {
    let fetched = match result {
        Ok(f) => f,
        Err(Error::AccessDenied(_)) => {
            let error = "the channel's url is no longer in this pack's grants.outbound".into();
            return Outcome::Final { error, status: None };
        }
        Err(Error::Invalid(m)) => return Outcome::Final { error: clip(&m), status: None },
        Err(e) => {
            let error = clip(capability::message(&e));
            return Outcome::Retry { error, status: None, retry_after_s: None };
        }
    };
    let status = fetched.status;
    let excerpt = excerpt(&fetched.body);
    let error = if excerpt.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {excerpt}")
    };
    match status {
        200..=299 => Outcome::Delivered { status },
        410 => Outcome::Gone,
        408 | 429 | 500..=599 => {
            let retry_after_s = header(&fetched.headers, "retry-after")
                .and_then(|v| retry_after_seconds(v, now_ms));
            Outcome::Retry { error, status: Some(status), retry_after_s }
        }
        300..=399 => Outcome::Final {
            error: format!("{error} (a redirect: not followed)"),
            status: Some(status),
        },
        _ => Outcome::Final { error: format!("{error} (not retried)"), status: Some(status) },
    }
}

/// Milliseconds to wait before the next attempt, after `attempts` were made: the schedule's
/// wait for it (its last one repeats), stretched or shrunk by up to `jitter` at random
/// (`random` in 0..1), and no sooner than `retry_after_s` (capped at `max_retry_after_s`).
pub(crate) fn wait_ms(
    schedule: &[f64],
    attempts: i64,
    jitter: f64,
    random: f64,
    retry_after_s: Option<i64>,
    max_retry_after_s: i64,
) -> i64 {
    let index = usize::try_from(attempts.saturating_sub(1)).unwrap_or(0);
    let base = schedule.get(index).or(schedule.last()).copied().unwrap_or(0.0) * 1000.0;
    let jittered = base * (1.0 - jitter + 2.0 * jitter * random.clamp(0.0, 1.0));
    let asked = retry_after_s.map_or(0, |s| s.clamp(0, max_retry_after_s).saturating_mul(1000));
    (jittered as i64).max(asked).max(0)
}

/// A random number in 0..1 from the host's secure source.
pub(crate) fn random_unit() -> f64 {
    let mut bytes = [0u8; 4];
    crypto::random_bytes(&mut bytes);
    f64::from(u32::from_le_bytes(bytes)) / (f64::from(u32::MAX) + 1.0)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// `Retry-After` as seconds from now: a number of seconds, or an HTTP date
/// (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub(crate) fn retry_after_seconds(value: &str, now_ms: i64) -> Option<i64> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<i64>() {
        return Some(seconds.max(0));
    }
    let at_ms = http_date_ms(value)?;
    Some(((at_ms - now_ms) / 1000).max(0))
}

/// An IMF-fixdate (RFC 9110 §5.6.7) as milliseconds since the epoch.
fn http_date_ms(value: &str) -> Option<i64> {
    const MONTHS: [&str; 12] =
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let (_, rest) = value.split_once(", ")?;
    let parts: Vec<&str> = rest.split(' ').collect();
    let [day, month, year, time, "GMT"] = parts.as_slice() else { return None };
    let month = MONTHS.iter().position(|m| m == month)? + 1;
    let rfc3339 = format!("{year}-{month:02}-{day:0>2}T{time}Z");
    clock::parse_rfc3339(&rfc3339)
}

/// The start of a receiver's answer, as one line of plain text.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let line: String =
        text.chars().map(|c| if c.is_control() { ' ' } else { c }).take(MAX_EXCERPT).collect();
    line.trim().into()
}

fn clip(text: &str) -> String {
    text.chars().take(MAX_ERROR).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, headers: &[(&str, &str)], body: &str) -> Result<Fetched, Error> {
        Ok(Fetched {
            status,
            headers: headers.iter().map(|(n, v)| ((*n).into(), (*v).into())).collect(),
            body: body.as_bytes().to_vec(),
        })
    }

    #[test]
    fn only_2xx_is_success_and_410_is_gone() {
        assert_eq!(classify(answer(204, &[], ""), 0), Outcome::Delivered { status: 204 });
        assert_eq!(classify(answer(410, &[], ""), 0), Outcome::Gone);
        let Outcome::Final { error, status } = classify(answer(302, &[], ""), 0) else {
            panic!("a redirect is final")
        };
        assert_eq!((error.as_str(), status), ("HTTP 302 (a redirect: not followed)", Some(302)));
        assert!(matches!(classify(answer(400, &[], "no"), 0), Outcome::Final { .. }));
        let denied = classify(Err(Error::AccessDenied("x".into())), 0);
        assert!(matches!(denied, Outcome::Final { status: None, .. }));
    }

    #[test]
    fn failures_worth_retrying() {
        for status in [408, 429, 500, 503] {
            assert!(matches!(classify(answer(status, &[], ""), 0), Outcome::Retry { .. }));
        }
        let timeout = classify(Err(Error::Unavailable("timed out after 15000 ms".into())), 0);
        assert_eq!(
            timeout,
            Outcome::Retry {
                error: "timed out after 15000 ms".into(),
                status: None,
                retry_after_s: None
            }
        );
        let busy = classify(answer(503, &[("Retry-After", "120")], "busy\nnow"), 0);
        assert_eq!(
            busy,
            Outcome::Retry {
                error: "HTTP 503: busy now".into(),
                status: Some(503),
                retry_after_s: Some(120)
            }
        );
    }

    #[test]
    fn retry_after_is_seconds_or_a_date() {
        let at = clock::parse_rfc3339("1994-11-06T08:49:37Z").unwrap();
        assert_eq!(retry_after_seconds("Sun, 06 Nov 1994 08:49:37 GMT", at - 30_000), Some(30));
        assert_eq!(retry_after_seconds("Sun, 06 Nov 1994 08:49:37 GMT", at + 5_000), Some(0));
        assert_eq!(retry_after_seconds(" 7 ", 0), Some(7));
        assert_eq!(retry_after_seconds("-3", 0), Some(0));
        assert_eq!(retry_after_seconds("soon", 0), None);
    }

    #[test]
    fn waits_follow_the_schedule_with_jitter() {
        let schedule = [5.0, 300.0];
        assert_eq!(wait_ms(&schedule, 1, 0.0, 0.9, None, 60), 5_000);
        assert_eq!(wait_ms(&schedule, 2, 0.0, 0.9, None, 60), 300_000);
        assert_eq!(wait_ms(&schedule, 9, 0.0, 0.9, None, 60), 300_000, "the last repeats");
        assert_eq!(wait_ms(&schedule, 1, 0.2, 0.0, None, 60), 4_000);
        assert_eq!(wait_ms(&schedule, 1, 0.2, 1.0, None, 60), 6_000);
        assert_eq!(wait_ms(&schedule, 1, 0.0, 0.5, Some(30), 60), 30_000, "Retry-After");
        assert_eq!(wait_ms(&schedule, 1, 0.0, 0.5, Some(999), 60), 60_000, "capped");
    }
}
