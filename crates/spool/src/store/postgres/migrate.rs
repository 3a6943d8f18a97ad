//! Creating and upgrading the PostgreSQL schema: one transaction under a per-schema advisory
//! lock, so concurrent first-time migrations of the same schema queue instead of racing on
//! `CREATE`.

use super::{PostgresStore, fnv1a};
use crate::store::StoreResult;
use crate::store::rules::{check_existing_schema, check_schema_version};

/// The migrations in order: each one's version and its script (run as one multi-statement
/// batch, with `{schema}` replaced like every other statement).
const MIGRATIONS: [(i64, &str); 7] = [
    (1, include_str!("sql/schema.sql")),
    (2, include_str!("sql/schema_v2.sql")),
    (3, include_str!("sql/schema_v3.sql")),
    (4, include_str!("sql/schema_v4.sql")),
    (5, include_str!("sql/schema_v5.sql")),
    (6, include_str!("sql/schema_v6.sql")),
    (7, include_str!("sql/schema_v7.sql")),
];

/// The schema version this build creates and understands: the last migration's.
const SCHEMA_VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].0;

impl PostgresStore {
    /// Creates the schema if needed and applies the migrations it lacks, refusing a schema
    /// newer than this build.
    pub(super) async fn migrate_schema(&self) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        self.query(include_str!("sql/migrate_quiet.sql"))
            .execute(&mut *tx)
            .await?;
        // Held until commit: concurrent first-time migrations of the same schema queue here
        // instead of racing on CREATE.
        self.query(include_str!("sql/advisory_xact_lock.sql"))
            .bind(self.migration_lock_key())
            .execute(&mut *tx)
            .await?;
        // CREATE SCHEMA IF NOT EXISTS checks the CREATE privilege even when the schema exists,
        // so look first: a DBA may have created it for a role that cannot create schemas.
        let exists: bool = self
            .query_scalar(include_str!("sql/migrate_schema_exists.sql"))
            .bind(&self.schema)
            .fetch_one(&mut *tx)
            .await?;
        if !exists {
            self.query(include_str!("sql/migrate_create_schema.sql"))
                .execute(&mut *tx)
                .await?;
        }
        self.query(include_str!("sql/migrate_versions_table.sql"))
            .execute(&mut *tx)
            .await?;
        let current: Option<i64> = self
            .query_scalar(include_str!("sql/migrate_version.sql"))
            .fetch_one(&mut *tx)
            .await?;
        let current = current.unwrap_or(0);
        check_schema_version(current, SCHEMA_VERSION)?;
        for (version, script) in MIGRATIONS {
            if current >= version {
                continue;
            }
            sqlx::raw_sql(self.sql(script)).execute(&mut *tx).await?;
            self.query(include_str!("sql/migrate_record_version.sql"))
                .bind(version)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Checks, reading only, that the schema holds Spool's tables at [`SCHEMA_VERSION`].
    pub(super) async fn check_schema_version(&self) -> StoreResult<()> {
        let mut conn = self.unit(&self.pool).await?;
        let exists: bool = self
            .query_scalar(include_str!("sql/migrate_exists.sql"))
            .bind(&self.schema)
            .fetch_one(&mut *conn)
            .await?;
        let found = if exists {
            self.query_scalar(include_str!("sql/migrate_version.sql"))
                .fetch_one(&mut *conn)
                .await?
        } else {
            None
        };
        conn.done().await?;
        check_existing_schema(found, SCHEMA_VERSION, || {
            format!(
                "{} (schema `{}`)",
                crate::redact::redact_url(&self.url),
                self.schema
            )
        })
    }

    /// The advisory lock that serialises migrations of this schema (and only this schema).
    fn migration_lock_key(&self) -> i64 {
        fnv1a(format!("spool migrate {}", self.schema).as_bytes()) as i64
    }
}
