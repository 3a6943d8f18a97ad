//! Creating and upgrading Spool's tables, once, however many processes start at the same time.

use sqlx::{Executor, MySqlConnection, mysql::MySqlDatabaseError};

use super::{
    MysqlStore,
    sql::{fnv1a, sql},
};
use crate::store::{StoreError, StoreResult};

/// The schema version this build writes and reads.
pub(super) const SCHEMA_VERSION: i64 = 2;
/// Errors of a schema-changing statement that finds its change already made: a duplicate
/// column (1060) or index (1061). Version 2 is run again after a crash half-way through it
/// (MySQL commits around every DDL statement), and MySQL 8, unlike MariaDB, has no
/// `ADD COLUMN IF NOT EXISTS`, so these mean "done already".
const ALREADY_APPLIED: [u16; 2] = [1060, 1061];
/// How long a migration waits for another process's migration to finish.
const LOCK_WAIT_SECS: i64 = 60;

impl MysqlStore {
    pub(super) async fn migrate_tables(&self) -> StoreResult<()> {
        let mut conn = self.pool.acquire().await?;
        // A named lock, not a transaction: MySQL commits around every CREATE TABLE. Lock names
        // are server-wide (and at most 64 characters), so the name is derived from the
        // database's; the server drops the lock if this connection dies.
        let database: Option<String> = sqlx::query_scalar("SELECT DATABASE()")
            .fetch_one(&mut *conn)
            .await?;
        let database = database.ok_or_else(|| {
            StoreError::BadUrl("the MySQL URL names no database: mysql://USER@HOST/DB".into())
        })?;
        let lock = format!("spool migrate {:016x}", fnv1a(database.as_bytes()));
        let locked: Option<i64> = sqlx::query_scalar("SELECT GET_LOCK(?, ?)")
            .bind(&lock)
            .bind(LOCK_WAIT_SECS)
            .fetch_one(&mut *conn)
            .await?;
        if locked != Some(1) {
            return Err(StoreError::Unavailable(format!(
                "another process has been migrating database `{database}` for over {LOCK_WAIT_SECS} s"
            )));
        }
        let migrated = migrate_locked(&mut conn).await;
        let released = sqlx::query("SELECT RELEASE_LOCK(?)")
            .bind(&lock)
            .execute(&mut *conn)
            .await;
        migrated?;
        released?;
        Ok(())
    }
}

async fn migrate_locked(conn: &mut MySqlConnection) -> StoreResult<()> {
    conn.execute(
        "CREATE TABLE IF NOT EXISTS spool_migrations (
             version    BIGINT NOT NULL PRIMARY KEY,
             applied_at BIGINT NOT NULL
         ) ENGINE = InnoDB",
    )
    .await?;
    let current: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM spool_migrations")
        .fetch_one(&mut *conn)
        .await?;
    let current = current.unwrap_or(0);
    if current > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found: current,
            supported: SCHEMA_VERSION,
        });
    }
    if current < 1 {
        for statement in statements(include_str!("schema.sql")) {
            conn.execute(sqlx::AssertSqlSafe(statement)).await?;
        }
        // Every counter row exists from the start, so bumping one is a plain UPDATE.
        let mut rows = vec!["('restart_epoch', 0, 0)".to_string()];
        for slot in 0..super::sql::COUNTER_SLOTS {
            rows.push(format!("('processed', {slot}, 0), ('changes', {slot}, 0)"));
        }
        conn.execute(sqlx::AssertSqlSafe(format!(
            "INSERT IGNORE INTO spool_meta (name, slot, value) VALUES {}",
            rows.join(", ")
        )))
        .await?;
        record(conn, 1).await?;
    }
    if current < 2 {
        for statement in statements(include_str!("schema_v2.sql")) {
            match conn.execute(sqlx::AssertSqlSafe(statement)).await {
                Ok(_) => {}
                Err(sqlx::Error::Database(e))
                    if e.try_downcast_ref::<MySqlDatabaseError>()
                        .is_some_and(|e| ALREADY_APPLIED.contains(&e.number())) => {}
                Err(e) => return Err(e.into()),
            }
        }
        record(conn, 2).await?;
    }
    Ok(())
}

/// Records that a schema version is applied.
async fn record(conn: &mut MySqlConnection, version: i64) -> StoreResult<()> {
    sqlx::query(sql(
        "INSERT IGNORE INTO spool_migrations (version, applied_at) VALUES (?, {now})",
    ))
    .bind(version)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The statements of a schema file: `;` ends a statement at the end of a line, and `--`
/// comments are dropped.
fn statements(script: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in script.lines() {
        let code = line.split("--").next().unwrap_or("").trim_end();
        if code.trim().is_empty() {
            continue;
        }
        current.push_str(code);
        current.push('\n');
        if code.ends_with(';') {
            out.push(current.trim().trim_end_matches(';').to_string());
            current.clear();
        }
    }
    if !current.trim().is_empty() {
        out.push(current.trim().to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_splits_into_statements() {
        let all = statements(include_str!("schema.sql"));
        assert_eq!(all.len(), 4);
        assert!(
            all.iter()
                .all(|s| s.starts_with("CREATE TABLE IF NOT EXISTS"))
        );
        assert!(all.iter().all(|s| !s.contains("--") && !s.ends_with(';')));
    }

    #[test]
    fn version_2_adds_columns_then_tables() {
        let all = statements(include_str!("schema_v2.sql"));
        assert_eq!(all.iter().filter(|s| s.contains(" ADD COLUMN ")).count(), 6);
        assert_eq!(
            all.iter()
                .filter(|s| s.starts_with("CREATE TABLE IF NOT EXISTS"))
                .count(),
            6
        );
        assert!(all.iter().all(|s| !s.contains("--") && !s.ends_with(';')));
    }
}
