//! The compiled-pack cache: the first load writes it, later loads map it, and a damaged entry
//! is recompiled instead of failing.

use valhalla::config::RuntimeConfig;
use valhalla::runtime::{RuntimeEngine, load_component};

use crate::harness::packs_dir;

#[test]
fn compiled_packs_are_cached_and_damage_is_survived() {
    let dir = tempfile::tempdir().unwrap();
    let engine = RuntimeEngine::new(&RuntimeConfig {
        max_instances: 4,
        ..RuntimeConfig::default()
    })
    .unwrap();
    let wasm = packs_dir().join("system_config.wasm");
    let cached = || -> Vec<_> {
        std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
            .collect()
    };

    load_component(&engine.engine, &wasm, dir.path()).unwrap();
    let files = cached();
    assert_eq!(files.len(), 1, "one compiled file per pack");
    let written = std::fs::metadata(&files[0]).unwrap().modified().unwrap();

    load_component(&engine.engine, &wasm, dir.path()).unwrap();
    assert_eq!(
        std::fs::metadata(&files[0]).unwrap().modified().unwrap(),
        written,
        "a warm load reads the cache instead of rewriting it"
    );

    std::fs::write(&files[0], b"not a compiled component").unwrap();
    load_component(&engine.engine, &wasm, dir.path()).unwrap();
    assert!(
        std::fs::read(&files[0]).unwrap().len() > 1000,
        "recompiled and rewritten"
    );
}
