//! Fuzz target: a request as raw HTTP/1.1 to the real host (see `valhalla_fuzz::http`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use valhalla_fuzz::http;

fuzz_target!(|input: http::Input| {
    let addr = http::server();
    let (method, bytes) = input.bytes();
    http::check(addr, method, &bytes);
});
