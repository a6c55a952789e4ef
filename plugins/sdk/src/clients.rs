//! The api_clients pack as other packs meet it: an API client named in a request body by its
//! id (`<id>` or its principal id `client:<id>`) or by one of its live keys, resolved to the
//! client id. The caller stores the id, never the key (the pack needs `grants.packs =
//! ["api_clients"]`).

use crate::alloc_prelude::*;

use serde::Deserialize;

use crate::bindings::valhalla::pack::types::{Error, Method};
use crate::capability;
use crate::packs;
use crate::problem::Problem;

/// The principal id prefix of an API client.
pub const PRINCIPAL_PREFIX: &str = "client:";

/// A client id as given: `client:<id>` and `<id>` both name `<id>`.
pub fn id_of(value: &str) -> &str {
    value.strip_prefix(PRINCIPAL_PREFIX).unwrap_or(value)
}

/// Does `value` name a client by its id (a UUID), rather than give a key?
pub fn looks_like_id(value: &str) -> bool {
    let id = id_of(value);
    id.len() == 36
        && id.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// The id of the client `value` names: an existing client's id, or the client of the live
/// key given. Neither is 422 naming `field`; the key itself is never logged or echoed.
pub fn resolve(value: &str, field: &str) -> Result<String, Problem> {
    #[derive(Deserialize)]
    struct Client {
        id: String,
    }
    let answer = if looks_like_id(value) {
        packs::get("api_clients", &format!("/system/clients/{}", id_of(value)))
    } else {
        let body = serde_json::json!({ "key": value });
        packs::call("api_clients", Method::Post, "/system/clients/lookup", &[], Some(&body))
    };
    let answer = answer.map_err(|e| match e {
        Error::Unavailable(_) | Error::AccessDenied(_) | Error::NotFound(_) => {
            Problem::unavailable("API client rules need the api_clients pack (enabled and granted)")
        }
        other => Problem::unavailable(capability::message(&other).to_string()),
    })?;
    match answer.status {
        200 => serde_json::from_slice::<Client>(&answer.body)
            .map(|c| c.id)
            .map_err(|_| Problem::unavailable("api_clients answered an unexpected body")),
        404 => Err(Problem::invalid_field(
            field,
            "not an API client id (`<id>` or `client:<id>`) or a live API key",
        )),
        status => Err(Problem::unavailable(format!("api_clients answered {status}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_are_told_from_keys() {
        assert!(looks_like_id("01938a7e-3b4c-7d2e-9f10-0123456789ab"));
        assert!(looks_like_id("client:01938a7e-3b4c-7d2e-9f10-0123456789ab"));
        assert!(!looks_like_id("vk_0123456789abcdef0123456789abcdef0123456789abcdef"));
        assert!(!looks_like_id("01938a7e-3b4c-7d2e-9f10-0123456789a"));
        assert_eq!(id_of("client:x"), "x");
        assert_eq!(id_of("x"), "x");
    }
}
