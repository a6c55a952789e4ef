//! Fuzz target: the SDK's validated JSON bodies (see `valhalla_fuzz::body`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use valhalla_fuzz::body;

fuzz_target!(|input: body::Input| {
    body::check(
        input.validated,
        body::content_type(input.content_type),
        input.body(),
    );
});
