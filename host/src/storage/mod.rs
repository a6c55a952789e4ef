//! Storage: one database (SQLite embedded by default, PostgreSQL for scale-out), the host's
//! per-pack migrations, and the typed SQL that packs run through the `store` capability.

mod db;
mod error;
pub mod migrations;
mod sqlite_inline;
mod sqlite_lanes;
pub mod table_access;
mod values;

pub use db::{Access, Db};
pub use error::StorageError;
pub use values::{Rows, SqlValue, Statement};
