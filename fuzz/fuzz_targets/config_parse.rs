//! Fuzz target: `config.toml` text and `VALHALLA_*` overrides (see `valhalla_fuzz::config`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use valhalla_fuzz::config;

fuzz_target!(|input: config::Input| {
    config::check(&input.text(), input.env());
});
