//! Handlers: functions or closures whose arguments are extractors and whose success value
//! becomes the response. A handler's types also give its route's request and response
//! schemas, so the route table the pack declares is its manifest, its router and its API
//! description at once.

use crate::alloc_prelude::*;

use serde::Serialize;

use crate::extract::{FromRequest, Json};
use crate::problem::Problem;
use crate::request::Request;
use crate::response::Response;
use crate::schema::{self, JsonSchema, Schema};

/// What a handler's success value turns into.
pub trait IntoResponse {
    /// The HTTP answer.
    fn into_response(self) -> Result<Response, Problem>;

    /// The JSON Schema of the answer's body, when it has a typed one.
    fn body_schema() -> Option<Schema> {
        None
    }
}

impl IntoResponse for Response {
    fn into_response(self) -> Result<Response, Problem> {
        Ok(self)
    }
}

impl<T: Serialize + JsonSchema> IntoResponse for Json<T> {
    fn into_response(self) -> Result<Response, Problem> {
        Response::json(200, &self.0)
    }
    fn body_schema() -> Option<Schema> {
        Some(schema::of_response::<T>())
    }
}

/// 201 Created with `T` as JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct Created<T>(pub T);

impl<T: Serialize + JsonSchema> IntoResponse for Created<T> {
    fn into_response(self) -> Result<Response, Problem> {
        Response::json(201, &self.0)
    }
    fn body_schema() -> Option<Schema> {
        Some(schema::of_response::<T>())
    }
}

/// 202 Accepted with `T` as JSON: the work is queued.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted<T>(pub T);

impl<T: Serialize + JsonSchema> IntoResponse for Accepted<T> {
    fn into_response(self) -> Result<Response, Problem> {
        Response::json(202, &self.0)
    }
    fn body_schema() -> Option<Schema> {
        Some(schema::of_response::<T>())
    }
}

/// 204 No Content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoContent;

impl IntoResponse for NoContent {
    fn into_response(self) -> Result<Response, Problem> {
        Ok(Response { status: 204, headers: Vec::new(), body: Vec::new() })
    }
}

/// A route handler: `Fn(extractors…) -> Result<impl IntoResponse, Problem>`, up to six
/// extractors. `Args` is the tuple of extractor types (inferred; never written).
pub trait Handler<Args>: 'static {
    /// Extract the arguments, call, answer.
    fn call(&self, req: &Request) -> Result<Response, Problem>;
    /// The request body's schema (from the first extractor that reads the body).
    fn request_schema() -> Option<Schema>;
    /// The success answer's schema.
    fn response_schema() -> Option<Schema>;
}

macro_rules! handler {
    ($($arg:ident),*) => {
        impl<F, R, $($arg,)*> Handler<($($arg,)*)> for F
        where
            F: Fn($($arg),*) -> Result<R, Problem> + 'static,
            R: IntoResponse,
            $($arg: FromRequest,)*
        {
            #[allow(non_snake_case, unused_variables)]
            fn call(&self, req: &Request) -> Result<Response, Problem> {
                $(let $arg = $arg::from_request(req)?;)*
                (self)($($arg),*)?.into_response()
            }
            fn request_schema() -> Option<Schema> {
                None$(.or_else($arg::body_schema))*
            }
            fn response_schema() -> Option<Schema> {
                R::body_schema()
            }
        }
    };
}

handler!();
handler!(A1);
handler!(A1, A2);
handler!(A1, A2, A3);
handler!(A1, A2, A3, A4);
handler!(A1, A2, A3, A4, A5);
handler!(A1, A2, A3, A4, A5, A6);
