//! security_actions: scaffold (being written).

#![cfg_attr(not(test), no_std)]

use valhalla_sdk::prelude::*;

fn pack() -> Pack {
    Pack::new("security_actions", env!("CARGO_PKG_VERSION"), "security_actions")
}

valhalla_sdk::export_pack!(pack);
