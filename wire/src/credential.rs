//! The credential rule: headers that carry a caller's credential are taken out of every
//! request and shown only to guards that declare they authenticate.

/// The credential headers, lower-case.
pub const CREDENTIAL_HEADERS: [&str; 4] = [
    "x-api-key",
    "authorization",
    "proxy-authorization",
    "cookie",
];

/// Does the header `name` carry a credential? (Header names compare case-insensitively.)
pub fn is_credential(name: &str) -> bool {
    CREDENTIAL_HEADERS
        .iter()
        .any(|h| h.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_headers_in_any_case() {
        for h in CREDENTIAL_HEADERS {
            assert!(is_credential(h));
        }
        assert!(is_credential("X-API-Key"));
        assert!(is_credential("Cookie"));
        assert!(!is_credential("content-type"));
        assert!(!is_credential("x-api-keys"));
        assert!(!is_credential("set-cookie"));
    }
}
