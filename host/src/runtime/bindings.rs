//! The `valhalla:pack` world's host bindings, generated once from `wit/`; every other module
//! imports the types from here.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "pack",
    imports: { default: async },
    exports: { default: async },
});

pub use valhalla::pack::types::Error as CapabilityError;
pub use valhalla::pack::types::{Access, GuardSpec, Method, Principal, Proceed, Route, Schedule};
