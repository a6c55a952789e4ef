//! Errors the host capabilities answer (`store`, `packs`, `outbound-http` …), and how to
//! describe them.

pub use crate::bindings::valhalla::pack::types::Error;

/// The message inside a capability error.
pub fn message(e: &Error) -> &str {
    match e {
        Error::AccessDenied(m)
        | Error::NotFound(m)
        | Error::Conflict(m)
        | Error::Invalid(m)
        | Error::Unavailable(m)
        | Error::Internal(m) => m,
    }
}

/// The error's kind as the WIT names it: `access-denied`, `not-found` …
pub fn kind(e: &Error) -> &'static str {
    match e {
        Error::AccessDenied(_) => "access-denied",
        Error::NotFound(_) => "not-found",
        Error::Conflict(_) => "conflict",
        Error::Invalid(_) => "invalid",
        Error::Unavailable(_) => "unavailable",
        Error::Internal(_) => "internal",
    }
}
