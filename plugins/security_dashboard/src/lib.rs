//! security_dashboard: scaffold (being written).

#![cfg_attr(not(test), no_std)]

use valhalla_sdk::prelude::*;

fn pack() -> Pack {
    Pack::new("security_dashboard", env!("CARGO_PKG_VERSION"), "security_dashboard")
}

valhalla_sdk::export_pack!(pack);
