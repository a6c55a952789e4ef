//! Extractors: what a handler's arguments ask of the request. Each reads one part (a JSON
//! body, the path parameters, the query, the page, the principal) or fails with the problem
//! the client should see (400 malformed JSON, 415 content type, 422 naming the field).

use crate::alloc_prelude::*;

use serde::de::DeserializeOwned;

use crate::pairs::{PairError, from_pairs};
use crate::problem::Problem;
use crate::request::{Page, Principal, Request};
use crate::schema::{self, Schema};
use crate::validate::{Validate, Validator};

/// A value a handler argument takes from the request.
pub trait FromRequest: Sized {
    /// Read it, or say why the request does not carry it.
    fn from_request(req: &Request) -> Result<Self, Problem>;

    /// The JSON Schema of the request body this extractor reads, if it reads the body.
    fn body_schema() -> Option<Schema> {
        None
    }
}

/// The whole request (cheap: it is shared), for what no extractor covers.
impl FromRequest for Request {
    fn from_request(req: &Request) -> Result<Self, Problem> {
        Ok(req.clone())
    }
}

/// A JSON body of type `T`, whose fields say all there is to check. As a return value, a
/// 200 answer with `T` as JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned + schema::JsonSchema> FromRequest for Json<T> {
    fn from_request(req: &Request) -> Result<Self, Problem> {
        req.json_unchecked().map(Json)
    }
    fn body_schema() -> Option<Schema> {
        Some(schema::of::<T>())
    }
}

/// A JSON body of type `T`, checked by its [`Validate`] rules: every broken rule is one
/// field error of a single 422.
#[derive(Debug, Clone, PartialEq)]
pub struct Valid<T>(pub T);

impl<T: DeserializeOwned + Validate + schema::JsonSchema> FromRequest for Valid<T> {
    fn from_request(req: &Request) -> Result<Self, Problem> {
        req.json().map(Valid)
    }
    fn body_schema() -> Option<Schema> {
        Some(schema::of_valid::<T>())
    }
}

/// The route's `{name}` parameters: one value (`Path<String>`), a tuple in template order,
/// or a struct by name. A value that does not parse is a 422 naming the parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct Path<T>(pub T);

impl<T: DeserializeOwned> FromRequest for Path<T> {
    fn from_request(req: &Request) -> Result<Self, Problem> {
        from_pairs(req.params()).map(Path).map_err(pair_problem)
    }
}

/// The query string as a struct, fields by name (`Option` for the optional ones). Unknown
/// parameters are ignored; a value that does not parse is a 422 naming the parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned> FromRequest for Query<T> {
    fn from_request(req: &Request) -> Result<Self, Problem> {
        from_pairs(req.query_pairs()).map(Query).map_err(pair_problem)
    }
}

/// [`Query<T>`] whose values are also checked by `T`'s [`Validate`] rules (`#[derive(Validate)]`
/// on the query struct): every broken rule is one field error of a 422 naming the parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidQuery<T>(pub T);

impl<T: DeserializeOwned + Validate> FromRequest for ValidQuery<T> {
    fn from_request(req: &Request) -> Result<Self, Problem> {
        let Query(q) = Query::<T>::from_request(req)?;
        Validator::of(&q)?;
        Ok(ValidQuery(q))
    }
}

/// [`Path<T>`] whose parameters are also checked by `T`'s [`Validate`] rules, e.g. a `{mode}`
/// that must be one of a closed set: a broken rule is a 422 naming the parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidPath<T>(pub T);

impl<T: DeserializeOwned + Validate> FromRequest for ValidPath<T> {
    fn from_request(req: &Request) -> Result<Self, Problem> {
        let Path(p) = Path::<T>::from_request(req)?;
        Validator::of(&p)?;
        Ok(ValidPath(p))
    }
}

fn pair_problem(err: PairError) -> Problem {
    let field = if err.name.is_empty() { "query".to_string() } else { err.name };
    Problem::invalid_field(field, err.message)
}

/// `limit` (1..=1000, default 50) and `offset` (>= 0, default 0).
impl FromRequest for Page {
    fn from_request(req: &Request) -> Result<Self, Problem> {
        req.page()
    }
}

/// The authenticated principal, if any.
impl FromRequest for Option<Principal> {
    fn from_request(req: &Request) -> Result<Self, Problem> {
        Ok(req.principal().cloned())
    }
}

/// Who acts, for audit records: the principal's id, or `anonymous`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor(pub String);

impl FromRequest for Actor {
    fn from_request(req: &Request) -> Result<Self, Problem> {
        Ok(Actor(req.actor().to_string()))
    }
}

/// For a PATCH body's `Option<Option<T>>` field, with `#[serde(default, deserialize_with =
/// "valhalla_sdk::present")]`: absent is `None` (leave it), present is `Some` — `null` being
/// `Some(None)` (clear it).
pub fn present<'de, D: serde::Deserializer<'de>, T: serde::Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// `true`, for `#[serde(default = "valhalla_sdk::yes")]` on a flag that is on unless said.
pub fn yes() -> bool {
    true
}

/// Functions for `#[serde(default = "name")]` that answer a fixed value (serde takes a
/// function, not a value), each `fn name() -> Type = value;` (the value converted with
/// `Into`):
///
/// ```
/// valhalla_sdk::defaults! {
///     /// a minute
///     fn minute() -> i64 = 60;
///     fn general() -> String = "general";
/// }
/// assert_eq!((minute(), general()), (60, "general".to_string()));
/// ```
#[macro_export]
macro_rules! defaults {
    ($($(#[$meta:meta])* fn $name:ident() -> $ty:ty = $value:expr;)*) => {$(
        $(#[$meta])*
        fn $name() -> $ty {
            ::core::convert::Into::into($value)
        }
    )*};
}
