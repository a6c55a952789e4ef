//! Guard decisions: let a request proceed (as a principal, with extra response headers) or
//! answer it now.

use crate::alloc_prelude::*;

use crate::bindings::valhalla::pack::types as wit;
use crate::response::Response;

pub use wit::{Decision, Principal};

/// Let the request go on unchanged.
pub fn proceed() -> Decision {
    proceed_with(None, Vec::new())
}

/// Let the request go on as `principal`.
pub fn proceed_as(principal: Principal) -> Decision {
    proceed_with(Some(principal), Vec::new())
}

/// Let the request go on; `headers` are added to the final response.
pub fn proceed_with(principal: Option<Principal>, headers: Vec<(String, String)>) -> Decision {
    Decision::Proceed(wit::Proceed { principal, headers })
}

/// Answer the request with `response`; the route is not called.
pub fn respond(response: Response) -> Decision {
    Decision::Respond(response.into_wit())
}

/// A principal with `roles`.
pub fn principal(id: impl Into<String>, name: impl Into<String>, roles: Vec<String>) -> Principal {
    Principal { id: id.into(), name: name.into(), roles }
}
