//! honeypots: scaffold (being written).

#![cfg_attr(not(test), no_std)]

use valhalla_sdk::prelude::*;

fn pack() -> Pack {
    Pack::new("honeypots", env!("CARGO_PKG_VERSION"), "honeypots")
}

valhalla_sdk::export_pack!(pack);
