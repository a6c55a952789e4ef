//! Problem kinds: the slug of each `urn:valhalla:problem:<slug>` type URI the host or a pack
//! answers, with its HTTP status and title. One table, so the host and the SDK cannot drift.

use crate::UnknownName;

/// What every problem `type` URI starts with.
pub const PROBLEM_TYPE_PREFIX: &str = "urn:valhalla:problem:";

macro_rules! kinds {
    ($($(#[$doc:meta])* $kind:ident => $slug:literal, $status:literal, $title:literal;)*) => {
        /// Every kind of problem the host or a pack answers.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Kind {
            $($(#[$doc])* $kind,)*
        }

        impl Kind {
            /// Every kind, in status order.
            pub const ALL: &'static [Kind] = &[$(Kind::$kind,)*];

            /// The slug after [`PROBLEM_TYPE_PREFIX`]: `not-found`.
            pub const fn slug(self) -> &'static str {
                match self {
                    $(Kind::$kind => $slug,)*
                }
            }

            /// The whole `type` URI: `urn:valhalla:problem:not-found`.
            pub const fn type_uri(self) -> &'static str {
                match self {
                    $(Kind::$kind => concat!("urn:valhalla:problem:", $slug),)*
                }
            }

            /// The HTTP status it is answered with.
            pub const fn status(self) -> u16 {
                match self {
                    $(Kind::$kind => $status,)*
                }
            }

            /// The problem's `title`.
            pub const fn title(self) -> &'static str {
                match self {
                    $(Kind::$kind => $title,)*
                }
            }
        }
    };
}

kinds! {
    /// the request is wrong in a way no other kind names
    BadRequest => "bad-request", 400, "Bad Request";
    /// the body is not JSON, or not the JSON the route takes
    MalformedJson => "malformed-json", 400, "Malformed JSON";
    /// no (valid) credential
    Unauthorized => "unauthorized", 401, "Unauthorized";
    /// a credential without the role the route needs
    Forbidden => "forbidden", 403, "Forbidden";
    NotFound => "not-found", 404, "Not Found";
    /// the path exists, not with this method (the `Allow` header says which)
    MethodNotAllowed => "method-not-allowed", 405, "Method Not Allowed";
    Conflict => "conflict", 409, "Conflict";
    /// the body is over the server's limit
    PayloadTooLarge => "payload-too-large", 413, "Payload Too Large";
    UnsupportedMediaType => "unsupported-media-type", 415, "Unsupported Media Type";
    /// fields are invalid (the problem lists them)
    Validation => "validation", 422, "Unprocessable Content";
    /// a rate limit refused the request
    RateLimited => "rate-limited", 429, "Too Many Requests";
    /// the handler failed; the detail carries no internals
    Internal => "internal", 500, "Internal Server Error";
    /// the pack trapped or answered something the host cannot send
    PackFailed => "pack-failed", 500, "Internal Server Error";
    /// the pack ran out of its memory cap
    PackOutOfMemory => "pack-out-of-memory", 500, "Internal Server Error";
    /// something the request needs cannot answer now
    Unavailable => "unavailable", 503, "Service Unavailable";
    /// the service is in maintenance or read-only mode and refuses writes
    ReadOnly => "read-only", 503, "Service Unavailable";
    /// a guard could not decide, so the request was refused
    GuardFailed => "guard-failed", 503, "Service Unavailable";
    /// the pack ran past its deadline
    PackTimeout => "pack-timeout", 503, "Service Unavailable";
    /// no instance of the pack could be had now
    Overloaded => "overloaded", 503, "Service Unavailable";
}

impl Kind {
    /// The kind whose slug is `slug`.
    pub fn from_slug(slug: &str) -> Option<Kind> {
        Kind::ALL.iter().copied().find(|k| k.slug() == slug)
    }

    /// The kind a whole `type` URI names.
    pub fn from_type_uri(uri: &str) -> Option<Kind> {
        Kind::from_slug(uri.strip_prefix(PROBLEM_TYPE_PREFIX)?)
    }
}

impl core::str::FromStr for Kind {
    type Err = UnknownName;

    fn from_str(slug: &str) -> Result<Self, Self::Err> {
        Kind::from_slug(slug).ok_or(UnknownName)
    }
}

impl core::fmt::Display for Kind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.slug())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_uris_are_prefix_and_slug() {
        for kind in Kind::ALL {
            let uri = kind.type_uri();
            assert_eq!(uri.strip_prefix(PROBLEM_TYPE_PREFIX), Some(kind.slug()));
            assert_eq!(Kind::from_type_uri(uri), Some(*kind));
            assert_eq!(kind.slug().parse::<Kind>(), Ok(*kind));
        }
        assert_eq!(Kind::from_slug("nope"), None);
        assert_eq!(Kind::from_type_uri("not-found"), None);
    }

    #[test]
    fn slugs_are_unique_and_lower_kebab() {
        for (i, a) in Kind::ALL.iter().enumerate() {
            assert!(
                a.slug()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'-'),
                "{a:?}"
            );
            for b in &Kind::ALL[i + 1..] {
                assert_ne!(a.slug(), b.slug());
            }
        }
    }

    #[test]
    fn the_wire_is_what_clients_already_see() {
        let seen = [
            (Kind::BadRequest, 400, "Bad Request"),
            (Kind::MalformedJson, 400, "Malformed JSON"),
            (Kind::Unauthorized, 401, "Unauthorized"),
            (Kind::Forbidden, 403, "Forbidden"),
            (Kind::NotFound, 404, "Not Found"),
            (Kind::MethodNotAllowed, 405, "Method Not Allowed"),
            (Kind::Conflict, 409, "Conflict"),
            (Kind::PayloadTooLarge, 413, "Payload Too Large"),
            (Kind::UnsupportedMediaType, 415, "Unsupported Media Type"),
            (Kind::Validation, 422, "Unprocessable Content"),
            (Kind::RateLimited, 429, "Too Many Requests"),
            (Kind::Internal, 500, "Internal Server Error"),
            (Kind::PackFailed, 500, "Internal Server Error"),
            (Kind::PackOutOfMemory, 500, "Internal Server Error"),
            (Kind::Unavailable, 503, "Service Unavailable"),
            (Kind::ReadOnly, 503, "Service Unavailable"),
            (Kind::GuardFailed, 503, "Service Unavailable"),
            (Kind::PackTimeout, 503, "Service Unavailable"),
            (Kind::Overloaded, 503, "Service Unavailable"),
        ];
        assert_eq!(seen.len(), Kind::ALL.len());
        for (kind, status, title) in seen {
            assert_eq!((kind.status(), kind.title()), (status, title), "{kind:?}");
        }
        assert_eq!(
            Kind::RateLimited.type_uri(),
            "urn:valhalla:problem:rate-limited"
        );
    }
}
