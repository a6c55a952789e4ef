//! The wire vocabulary the Valhalla host and its packs share, in one `no_std` crate with no
//! dependencies, so both sides say the same thing byte for byte.
//!
//! # Layout
//! - [`problem`]: the RFC 9457 problem kinds (`urn:valhalla:problem:<slug>`), their status
//!   and title;
//! - [`method`]: HTTP method names (`GET` …);
//! - [`access`]: route access levels (`public`, `read`, `write`, `admin`) and which roles
//!   satisfy each;
//! - [`credential`]: the headers that carry a caller's credential, which only authenticating
//!   guards may see.
//!
//! ```
//! use valhalla_wire::{Access, Kind, Method, is_credential};
//!
//! assert_eq!(Kind::NotFound.type_uri(), "urn:valhalla:problem:not-found");
//! assert_eq!(Kind::NotFound.status(), 404);
//! assert_eq!("GET".parse::<Method>(), Ok(Method::Get));
//! assert!(Access::Write.allows_role("admin"));
//! assert!(is_credential("Authorization"));
//! ```

#![no_std]

pub mod access;
pub mod credential;
pub mod method;
pub mod problem;

pub use access::Access;
pub use credential::{CREDENTIAL_HEADERS, is_credential};
pub use method::Method;
pub use problem::{Kind, PROBLEM_TYPE_PREFIX};

/// A name that is not one of a vocabulary's words (`"FETCH"` as a method, `"owner"` as an
/// access level, an unknown problem slug).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownName;

impl core::fmt::Display for UnknownName {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("not a known name")
    }
}

impl core::error::Error for UnknownName {}
