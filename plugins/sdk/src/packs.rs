//! Calls into other packs through the host (only packs in this pack's `grants.packs`).

use crate::alloc_prelude::*;

use serde::Serialize;

use crate::bindings::valhalla::pack::packs::{self as host_packs, CallRequest};
use crate::bindings::valhalla::pack::types::{Error, Method};

/// Another pack's answer.
pub struct Answer {
    /// the HTTP status
    pub status: u16,
    /// the response body
    pub body: Vec<u8>,
}

impl Answer {
    /// A 2xx answer?
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as JSON (`null` when empty or not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// What a failed answer says: its problem's detail, with the field errors when there are
    /// several (one is in the detail already); `answered {status}` without a problem body.
    pub fn failure(&self) -> String {
        problem_text(&self.json()).unwrap_or_else(|| format!("answered {}", self.status))
    }
}

/// A problem+json body as one line: `detail (field: message; field: message)`.
pub fn problem_text(problem: &serde_json::Value) -> Option<String> {
    let detail = problem["detail"].as_str()?;
    let errors = problem["errors"].as_array().filter(|e| e.len() > 1);
    let fields: Vec<String> = errors
        .into_iter()
        .flatten()
        .map(|e| {
            format!(
                "{}: {}",
                e["field"].as_str().unwrap_or("?"),
                e["message"].as_str().unwrap_or("?")
            )
        })
        .collect();
    Some(if fields.is_empty() {
        detail.into()
    } else {
        format!("{detail} ({})", fields.join("; "))
    })
}

/// Call `method path` of `pack`, with `query` pairs and an optional JSON body.
pub fn call<B: Serialize>(
    pack: &str,
    method: Method,
    path: &str,
    query: &[(&str, &str)],
    body: Option<&B>,
) -> Result<Answer, Error> {
    let body = match body {
        Some(b) => serde_json::to_vec(b).map_err(|e| Error::Invalid(e.to_string()))?,
        None => Vec::new(),
    };
    let response = host_packs::call(
        pack,
        &CallRequest {
            method,
            path: path.to_string(),
            query: query.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string())).collect(),
            body,
        },
    )?;
    Ok(Answer { status: response.status, body: response.body })
}

/// A call without a body.
pub fn get(pack: &str, path: &str) -> Result<Answer, Error> {
    call::<()>(pack, Method::Get, path, &[], None)
}
