//! What the fuzz targets share: the inputs they are given (derived with `arbitrary`) and the
//! properties each input must keep. The targets in `fuzz_targets/` are one call each.
//!
//! - [`http`]: a request sent as raw HTTP/1.1 bytes to the real host (real packs, auth on,
//!   SQLite), decoded into the WIT request and answered: never a 5xx, every error of the host
//!   or a pack problem+json with its request id, and the server answers the next request;
//! - [`body`]: the SDK's typed, validated JSON bodies (`Valid<T>`): any bytes under any
//!   content type answer 2xx with a body that keeps the rules, or 400/415/422 problem+json
//!   naming fields;
//! - [`config`]: `config.toml` text, `VALHALLA_*` overrides, validation and grants: an error
//!   or a config, never a panic, and no message the host writes repeats the admin key;
//! - [`sql`]: the table sandbox's parser check: never a panic, the cached verdict is the fresh
//!   one, and nothing is allowed that names a table outside the pack's own.

pub mod body;
pub mod config;
pub mod http;
pub mod sql;
