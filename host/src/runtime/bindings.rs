//! The `valhalla:pack` world's host bindings, generated once from `wit/`; every other module
//! imports the types from here.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "pack",
    // Imports that can wait (the database, outbound HTTP, calls into other packs) are async.
    // Those that answer from memory (cache, log, host facts) are plain functions: an async
    // host call boxes a future and polls it through the fiber on every call. A rule's flag
    // set cannot be empty, so these name each function with the inert `exact`.
    imports: {
        "valhalla:pack/cache.get": exact,
        "valhalla:pack/cache.set": exact,
        "valhalla:pack/cache.delete": exact,
        "valhalla:pack/cache.delete-prefix": exact,
        "valhalla:pack/cache.incr": exact,
        "valhalla:pack/cache.counters": exact,
        "valhalla:pack/log.log": exact,
        "valhalla:pack/log.audit": exact,
        "valhalla:pack/host.routes": exact,
        "valhalla:pack/host.packs": exact,
        "valhalla:pack/host.settings": exact,
        "valhalla:pack/host.now-ms": exact,
        "valhalla:pack/host.now-us": exact,
        "valhalla:pack/host.random-bytes": trappable,
        "valhalla:pack/host.build-info": exact,
        default: async,
    },
    exports: { default: async },
});

pub use valhalla::pack::types::Error as CapabilityError;
pub use valhalla::pack::types::{Access, GuardSpec, Method, Principal, Proceed, Route, Schedule};
