//! Storage: one database (SQLite embedded by default, PostgreSQL for scale-out), the host's
//! per-pack migrations, and the typed SQL that packs run through the `store` capability.

mod caller;
mod db;
mod error;
pub mod migrations;
mod pg_sandbox;
mod sqlite_busy;
mod sqlite_inline;
mod sqlite_lanes;
mod sqlite_sandbox;
pub mod table_access;
mod values;

pub use caller::{Caller, PackPool, PackTables};
pub use db::{Access, Db, DbLimits};
pub use error::StorageError;
pub use pg_sandbox::{PackRoles, RoleError};
pub use values::{Rows, SqlValue, Statement};
