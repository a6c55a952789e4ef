//! The WebAssembly runtime: one engine with a pooling allocator and epoch deadlines, packs
//! compiled once (and cached on disk), and a fresh instance for every call.

pub mod admission;
pub mod bindings;
mod compile_cache;
mod engine;
mod error;
mod pack;
pub mod scheduler;
mod state;
pub mod tick_lease;

pub use compile_cache::load_component;
pub use engine::{EpochTicker, RuntimeEngine};
pub use error::{PackError, RuntimeError};
pub use pack::{CallKind, LoadedPack};
pub use state::{CallContext, PackContext, State};
