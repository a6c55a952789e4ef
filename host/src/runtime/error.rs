//! Runtime errors: loading packs (startup) and calling them (per request).

use std::path::PathBuf;

/// A pack could not be loaded; startup stops.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("wasm engine: {0}")]
    Engine(String),
    #[error("{path}: cannot read component: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a valid pack component: {message}")]
    Compile { path: PathBuf, message: String },
    #[error("pack `{pack}`: does not fit the valhalla:pack world: {message}")]
    Link { pack: String, message: String },
    #[error("pack `{pack}`: {message}")]
    Manifest { pack: String, message: String },
}

/// One call into a pack failed. The host answers the request with a problem; the pack and the
/// server stay up.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error("pack `{pack}` trapped: {detail}")]
    Trap { pack: String, detail: String },
    #[error("pack `{pack}` exceeded its deadline of {ms} ms")]
    Deadline { pack: String, ms: u128 },
    #[error("pack `{pack}` exceeded its memory limit of {mib} MiB")]
    OutOfMemory { pack: String, mib: usize },
    #[error("pack `{pack}` could not be instantiated: {detail}")]
    Busy { pack: String, detail: String },
}
