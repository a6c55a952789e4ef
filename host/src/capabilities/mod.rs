//! Host capabilities, one module per WIT import: each owns its grant check and its `Host`
//! impl for the store state.

pub mod cache;
mod host_info;
mod log;
pub mod log_sink;
pub mod outbound_http;
mod packs;
mod store;

impl crate::runtime::bindings::valhalla::pack::types::Host for crate::runtime::State {}
