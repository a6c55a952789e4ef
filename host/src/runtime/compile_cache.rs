//! Compiled components cached on disk, keyed by the wasm's hash and the engine's
//! compatibility hash: a warm start maps the cached code instead of recompiling.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use super::RuntimeError;

/// The component at `wasm_path`, from `cache_dir` when compiled before.
pub fn load_component(
    engine: &Engine,
    wasm_path: &Path,
    cache_dir: &Path,
) -> Result<Component, RuntimeError> {
    let wasm = std::fs::read(wasm_path).map_err(|source| RuntimeError::Read {
        path: wasm_path.to_path_buf(),
        source,
    })?;
    let stem = wasm_path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("pack");
    let cached = cache_dir.join(format!("{stem}-{}.cwasm", cache_key(engine, &wasm)));

    if cached.is_file() {
        // SAFETY: the file was written by `precompile_component` of an engine with the same
        // compatibility hash (it is in the name), into the host's own cache directory.
        match unsafe { Component::deserialize_file(engine, &cached) } {
            Ok(component) => {
                tracing::debug!(path = %cached.display(), "compiled pack loaded from cache");
                return Ok(component);
            }
            Err(e) => {
                tracing::warn!(path = %cached.display(), error = %e, "unusable compiled pack, recompiling");
                let _ = std::fs::remove_file(&cached);
            }
        }
    }

    let compile_err = |e: wasmtime::Error| RuntimeError::Compile {
        path: wasm_path.to_path_buf(),
        message: format!("{e:#}"),
    };
    let started = std::time::Instant::now();
    let bytes = engine.precompile_component(&wasm).map_err(compile_err)?;
    tracing::info!(
        pack = stem,
        ms = started.elapsed().as_millis() as u64,
        "compiled pack"
    );
    if let Err(e) = store(&cached, &bytes, stem) {
        tracing::warn!(path = %cached.display(), error = %e, "cannot cache compiled pack");
    }
    // SAFETY: `bytes` was produced just now by `precompile_component` of this engine.
    unsafe { Component::deserialize(engine, &bytes) }.map_err(compile_err)
}

fn cache_key(engine: &Engine, wasm: &[u8]) -> String {
    let mut engine_hash = DefaultHasher::new();
    engine
        .precompile_compatibility_hash()
        .hash(&mut engine_hash);
    let mut sha = Sha256::new();
    sha.update(wasm);
    sha.update(engine_hash.finish().to_le_bytes());
    hex::encode(&sha.finalize()[..16])
}

/// Write atomically (temp file + rename) and drop older builds of the same pack.
fn store(path: &Path, bytes: &[u8], stem: &str) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    for entry in std::fs::read_dir(dir)?.flatten() {
        let old: PathBuf = entry.path();
        let name = old.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with(&format!("{stem}-")) && name.ends_with(".cwasm") && old != path {
            let _ = std::fs::remove_file(&old);
        }
    }
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{stem}.{}.{seq}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}
