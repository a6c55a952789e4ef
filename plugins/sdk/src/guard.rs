//! Guard decisions: let a request proceed (as a principal, with extra response headers) or
//! answer it now.

use crate::alloc_prelude::*;

use crate::bindings::valhalla::pack::types as wit;
use crate::problem::Problem;
use crate::request::Request;
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

/// Refuse the request with `problem` (its problem+json, for this request), adding `headers`
/// in order: `refuse(req, problem, [("retry-after", "5")])`.
pub fn refuse<N: Into<String>, V: Into<String>>(
    req: &Request,
    problem: Problem,
    headers: impl IntoIterator<Item = (N, V)>,
) -> Decision {
    let response = problem.into_response(req.request_id(), req.path());
    respond(headers.into_iter().fold(response, |r, (name, value)| r.with_header(name, value)))
}

/// A principal with `roles`.
pub fn principal(id: impl Into<String>, name: impl Into<String>, roles: Vec<String>) -> Principal {
    Principal { id: id.into(), name: name.into(), roles }
}

pub use crate::bindings::valhalla::pack::cache::MemoInput;

/// Tell the host that the decision this guard call is about to return (if it lets the
/// request proceed) holds for every later request equal to this one in `inputs`, while the
/// cache entry `valid_while` stays the write this call read or made (`None`: for the life of
/// the process). The host then answers those requests without calling the guard; deleting
/// or rewriting the entry sends the next one here again. Only memoize what the decision was
/// really made from: an input left out is an input the host will not look at.
pub fn memoize(valid_while: Option<&str>, inputs: &[MemoInput]) {
    crate::bindings::valhalla::pack::cache::memoize_decision(valid_while, inputs);
}

pub use crate::bindings::valhalla::pack::cache::MemoCounter;

/// For a guard that counts requests: like [`memoize`], but on each later request equal in
/// `inputs` the host itself adds 1 to each of `counters` and answers as a rate limit does
/// (429 `rate-limited` with `Retry-After` and `RateLimit-*` past a limit, those headers of
/// the tightest counter otherwise), exactly under concurrency. The memo holds whether this
/// call let the request on or refused it.
pub fn memoize_counting(valid_while: Option<&str>, inputs: &[MemoInput], counters: &[MemoCounter]) {
    crate::bindings::valhalla::pack::cache::memoize_counting(valid_while, inputs, counters);
}
