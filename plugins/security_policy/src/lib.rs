//! security_policy: scaffold (being written).

#![cfg_attr(not(test), no_std)]

use valhalla_sdk::prelude::*;

fn pack() -> Pack {
    Pack::new("security_policy", env!("CARGO_PKG_VERSION"), "security_policy")
}

valhalla_sdk::export_pack!(pack);
