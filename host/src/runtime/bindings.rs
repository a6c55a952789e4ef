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
        "valhalla:pack/cache.get-many": exact,
        "valhalla:pack/cache.set": exact,
        "valhalla:pack/cache.delete": exact,
        "valhalla:pack/cache.delete-prefix": exact,
        "valhalla:pack/cache.incr": exact,
        "valhalla:pack/cache.counters": exact,
        "valhalla:pack/cache.memoize-decision": exact,
        "valhalla:pack/cache.memoize-counting": exact,
        "valhalla:pack/log.log": exact,
        "valhalla:pack/host.routes": exact,
        "valhalla:pack/host.packs": exact,
        "valhalla:pack/host.settings": exact,
        "valhalla:pack/host.now-ms": exact,
        "valhalla:pack/host.now-us": exact,
        "valhalla:pack/host.random-bytes": trappable,
        "valhalla:pack/host.build-info": exact,
        "valhalla:pack/outbound-http.allowed": exact,
        default: async,
    },
    exports: { default: async },
});

pub use valhalla::pack::types::Error as CapabilityError;
pub use valhalla::pack::types::{Access, GuardSpec, Method, Principal, Proceed, Route, Schedule};

/// The WIT enums and the shared wire vocabulary name the same things.
mod wire_names {
    use super::{Access, Method};
    use valhalla_wire as wire;

    impl From<Method> for wire::Method {
        fn from(m: Method) -> Self {
            match m {
                Method::Get => Self::Get,
                Method::Post => Self::Post,
                Method::Put => Self::Put,
                Method::Patch => Self::Patch,
                Method::Delete => Self::Delete,
                Method::Head => Self::Head,
                Method::Options => Self::Options,
            }
        }
    }

    impl From<wire::Method> for Method {
        fn from(m: wire::Method) -> Self {
            match m {
                wire::Method::Get => Self::Get,
                wire::Method::Post => Self::Post,
                wire::Method::Put => Self::Put,
                wire::Method::Patch => Self::Patch,
                wire::Method::Delete => Self::Delete,
                wire::Method::Head => Self::Head,
                wire::Method::Options => Self::Options,
            }
        }
    }

    impl From<Access> for wire::Access {
        fn from(a: Access) -> Self {
            match a {
                Access::Public => Self::Public,
                Access::Read => Self::Read,
                Access::Write => Self::Write,
                Access::Admin => Self::Admin,
            }
        }
    }

    impl Method {
        /// `GET`, `POST` …
        pub fn as_str(self) -> &'static str {
            wire::Method::from(self).as_str()
        }
    }

    impl Access {
        /// `public`, `read`, `write`, `admin`.
        pub fn as_str(self) -> &'static str {
            wire::Access::from(self).as_str()
        }
    }
}
