//! Creating and upgrading the SQLite schema. Migrations run on the writer thread inside one
//! `BEGIN IMMEDIATE` transaction, which is the migration lock: concurrent openers (in this
//! process or another) wait for it and then find the schema current.

use rusqlite::Connection;

use crate::{
    envelope::now_ms,
    store::{StoreError, StoreResult, rules::check_existing_schema},
};

/// The schema version this build writes and reads.
const SCHEMA_VERSION: i64 = 7;

/// The schema files, in version order: entry `i` brings the schema to version `i + 1`.
const MIGRATIONS: [&str; SCHEMA_VERSION as usize] = [
    include_str!("sql/schema.sql"),
    include_str!("sql/schema_v2.sql"),
    include_str!("sql/schema_v3.sql"),
    include_str!("sql/schema_v4.sql"),
    include_str!("sql/schema_v5.sql"),
    include_str!("sql/schema_v6.sql"),
    include_str!("sql/schema_v7.sql"),
];

/// Brings the schema to [`SCHEMA_VERSION`] inside the caller's transaction; refuses a database
/// written by a newer Spool.
pub(super) fn migrate(conn: &Connection) -> StoreResult<()> {
    conn.execute(include_str!("sql/migrate_versions.sql"), [])?;
    let current: Option<i64> =
        conn.query_row(include_str!("sql/migrate_current.sql"), [], |row| {
            row.get(0)
        })?;
    let current = current.unwrap_or(0);
    if current > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found: current,
            supported: SCHEMA_VERSION,
        });
    }
    for (version, schema) in (1..).zip(MIGRATIONS) {
        if current < version {
            conn.execute_batch(schema)?;
            conn.execute(include_str!("sql/migrate_record.sql"), [version, now_ms()])?;
        }
    }
    Ok(())
}

/// The schema version recorded in the database, `None` when it has no Spool tables; reads
/// only.
fn recorded_version(conn: &Connection) -> StoreResult<Option<i64>> {
    let tables: i64 =
        conn.query_row(include_str!("sql/migrate_exists.sql"), [], |row| row.get(0))?;
    if tables == 0 {
        return Ok(None);
    }
    Ok(
        conn.query_row(include_str!("sql/migrate_current.sql"), [], |row| {
            row.get(0)
        })?,
    )
}

/// Checks, reading only, that the database holds Spool's tables at [`SCHEMA_VERSION`];
/// `location` names it for the error.
pub(super) fn check(conn: &Connection, location: &str) -> StoreResult<()> {
    check_existing_schema(recorded_version(conn)?, SCHEMA_VERSION, || {
        location.to_string()
    })
}
