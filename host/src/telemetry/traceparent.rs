//! W3C Trace Context level 1: the `traceparent` and `tracestate` headers, parsed strictly
//! (an invalid header is ignored, never an error) and formatted.

use std::sync::Arc;

/// `traceparent`.
pub const TRACEPARENT: &str = "traceparent";
/// `tracestate`.
pub const TRACESTATE: &str = "tracestate";

/// The longest `tracestate` passed on (W3C: propagate at least 512 characters); a longer one
/// is dropped whole rather than cut inside a member.
pub const MAX_TRACESTATE: usize = 512;

/// The `sampled` flag.
pub const SAMPLED: u8 = 0x01;

/// The identity of one span: its trace, itself, its flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanIds {
    pub trace_id: u128,
    pub span_id: u64,
    pub flags: u8,
}

impl SpanIds {
    pub fn sampled(&self) -> bool {
        self.flags & SAMPLED != 0
    }

    /// The trace id as 32 lower-case hex digits.
    pub fn trace_hex(&self) -> String {
        self.traceparent()[3..35].to_string()
    }

    /// `00-<trace-id>-<span-id>-<flags>`: this span as the parent of whatever receives it.
    pub fn traceparent(&self) -> String {
        let bytes = self.traceparent_bytes();
        bytes.iter().map(|&b| char::from(b)).collect()
    }

    /// [`Self::traceparent`] as ASCII bytes, written without `fmt` (it is on every response).
    pub fn traceparent_bytes(&self) -> [u8; 55] {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = [b'-'; 55];
        out[0] = b'0';
        out[1] = b'0';
        let mut put = |at: usize, value: u128, digits: usize| {
            for i in 0..digits {
                let nibble = (value >> (4 * (digits - 1 - i))) & 0xf;
                out[at + i] = HEX[nibble as usize];
            }
        };
        put(3, self.trace_id, 32);
        put(36, u128::from(self.span_id), 16);
        put(53, u128::from(self.flags), 2);
        out
    }
}

fn hex_field(field: &str, len: usize) -> Option<u128> {
    // lower-case only: upper-case hex is invalid in a traceparent
    let ok = field.len() == len
        && field
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if ok {
        u128::from_str_radix(field, 16).ok()
    } else {
        None
    }
}

/// A `traceparent` value, or `None` when it is not valid level 1 (version `00`, or a later
/// version read as far as `00` defines; never `ff`; ids not all zero).
pub fn parse_traceparent(value: &str) -> Option<SpanIds> {
    let value = value.trim_matches([' ', '\t']);
    if value.len() < 55 || !value.is_ascii() {
        return None;
    }
    let version = hex_field(&value[0..2], 2)?;
    match version {
        0 if value.len() != 55 => return None,
        0xff => return None,
        // a later version: its first four fields are read as 00's, and it may go on after '-'
        v if v > 0 && value.len() > 55 && value.as_bytes()[55] != b'-' => return None,
        _ => {}
    }
    let bytes = value.as_bytes();
    if bytes[2] != b'-' || bytes[35] != b'-' || bytes[52] != b'-' {
        return None;
    }
    let trace_id = hex_field(&value[3..35], 32)?;
    let span_id = u64::try_from(hex_field(&value[36..52], 16)?).ok()?;
    let flags = u8::try_from(hex_field(&value[53..55], 2)?).ok()?;
    if trace_id == 0 || span_id == 0 {
        return None;
    }
    Some(SpanIds {
        trace_id,
        span_id,
        flags,
    })
}

/// The `tracestate` values of a request (several headers join with `,`), kept as they came
/// when they are printable ASCII and at most [`MAX_TRACESTATE`] long; `None` otherwise.
pub fn parse_tracestate<'a>(values: impl Iterator<Item = &'a str>) -> Option<Arc<str>> {
    let mut joined = String::new();
    for v in values {
        let v = v.trim_matches([' ', '\t']);
        if v.is_empty() {
            continue;
        }
        if !joined.is_empty() {
            joined.push(',');
        }
        joined.push_str(v);
        if joined.len() > MAX_TRACESTATE {
            return None;
        }
    }
    let printable = joined.bytes().all(|b| (0x20..=0x7e).contains(&b));
    (!joined.is_empty() && printable).then(|| Arc::from(joined))
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_parses_and_formats_back() {
        let ids = parse_traceparent(VALID).unwrap();
        assert_eq!(ids.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_eq!(ids.span_id, 0x00f067aa0ba902b7);
        assert!(ids.sampled());
        assert_eq!(ids.traceparent(), VALID);
        assert_eq!(ids.trace_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        let unsampled = parse_traceparent(&VALID.replace("-01", "-00")).unwrap();
        assert!(!unsampled.sampled());
        assert_eq!(parse_traceparent(&format!(" {VALID}\t")), Some(ids));
    }

    #[test]
    fn invalid_traceparents_are_refused() {
        let zero_trace = "00-00000000000000000000000000000000-00f067aa0ba902b7-01";
        let zero_span = "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01";
        for bad in [
            "",
            "garbage",
            zero_trace,
            zero_span,
            &VALID.to_uppercase(),
            &VALID.replace("00-4b", "ff-4b"),
            &VALID.replace("00-4b", "0x-4b"),
            &format!("{VALID}-extra"),
            &VALID[..54],
            &VALID.replace('-', "_"),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
            "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01é",
        ] {
            assert_eq!(parse_traceparent(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_later_version_is_read_as_far_as_00_goes() {
        let v1 = VALID.replacen("00", "01", 1);
        assert!(parse_traceparent(&v1).is_some());
        assert!(parse_traceparent(&format!("{v1}-whatever")).is_some());
        assert!(parse_traceparent(&format!("{v1}whatever")).is_none());
    }

    #[test]
    fn tracestate_is_kept_joined_and_bounded() {
        assert_eq!(
            parse_tracestate(["rojo=00f067aa0ba902b7", "congo=t61rcWkgMzE"].into_iter()).as_deref(),
            Some("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")
        );
        assert_eq!(parse_tracestate([""].into_iter()), None);
        assert_eq!(parse_tracestate(["a=b\u{7}"].into_iter()), None);
        let long = format!("k={}", "v".repeat(MAX_TRACESTATE));
        assert_eq!(parse_tracestate([long.as_str()].into_iter()), None);
    }
}
