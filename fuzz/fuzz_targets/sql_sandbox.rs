//! Fuzz target: the table sandbox's parser check (see `valhalla_fuzz::sql`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use valhalla_fuzz::sql;

fuzz_target!(|input: (sql::Sql, u8)| {
    sql::check(&input.0.text(), usize::from(input.1 % 10));
});
