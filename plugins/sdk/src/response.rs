//! Responses a handler returns: JSON bodies, empty answers, extra headers.

use crate::alloc_prelude::*;

use serde::Serialize;

use crate::bindings::valhalla::pack::types as wit;
use crate::problem::Problem;

/// An HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// the HTTP status
    pub status: u16,
    /// headers to send
    pub headers: Vec<(String, String)>,
    /// the body
    pub body: Vec<u8>,
}

impl Response {
    /// `status` with `body` of `content_type`.
    pub fn raw(status: u16, content_type: &str, body: Vec<u8>) -> Self {
        Self { status, headers: vec![("content-type".into(), content_type.into())], body }
    }

    /// `status` with `value` as JSON.
    pub fn json<T: Serialize + ?Sized>(status: u16, value: &T) -> Result<Self, Problem> {
        let body = serde_json::to_vec(value)
            .map_err(|_| Problem::internal("the response could not be encoded"))?;
        Ok(Self::raw(status, "application/json", body))
    }

    /// 200 with `value` as JSON.
    pub fn ok<T: Serialize + ?Sized>(value: &T) -> Result<Self, Problem> {
        Self::json(200, value)
    }

    /// 201 with `value` as JSON.
    pub fn created<T: Serialize + ?Sized>(value: &T) -> Result<Self, Problem> {
        Self::json(201, value)
    }

    /// 204, no body.
    pub fn no_content() -> Result<Self, Problem> {
        Ok(Self { status: 204, headers: Vec::new(), body: Vec::new() })
    }

    /// The same answer with one more header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub(crate) fn into_wit(self) -> wit::Response {
        wit::Response { status: self.status, headers: self.headers, body: self.body }
    }
}
