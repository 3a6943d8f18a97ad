//! Creating and upgrading Spool's tables, once, however many processes start at the same time;
//! and the server's version: Spool claims jobs with `SELECT ... FOR UPDATE SKIP LOCKED`, which
//! MySQL has since 8.0.1 and MariaDB since 10.6, and refuses older servers when it opens.

use crate::store::rules::{check_existing_schema, check_schema_version};
use std::fmt;

use sqlx::{Executor, MySqlConnection, mysql::MySqlDatabaseError};

use super::{COUNTER_SLOTS, MysqlStore, fnv1a, sql};
use crate::store::{StoreError, StoreResult};

/// The schema version this build writes and reads.
pub(super) const SCHEMA_VERSION: i64 = 7;
/// Errors of a schema-changing statement that finds its change already made: a duplicate
/// column (1060) or index (1061). Versions 2 and 3 are run again after a crash half-way through it
/// (MySQL commits around every DDL statement), and MySQL 8, unlike MariaDB, has no
/// `ADD COLUMN IF NOT EXISTS`, so these mean "done already".
const ALREADY_APPLIED: [u16; 2] = [1060, 1061];
/// How long a migration waits for another process's migration to finish.
const LOCK_WAIT_SECS: i64 = 60;

impl MysqlStore {
    /// Checks, reading only, that the database holds Spool's tables at [`SCHEMA_VERSION`].
    pub(super) async fn check_schema_version(&self) -> StoreResult<()> {
        let tables: i64 = sqlx::query_scalar(include_str!("sql/migrate_exists.sql"))
            .fetch_one(&self.pool)
            .await?;
        let found: Option<i64> = if tables > 0 {
            sqlx::query_scalar(include_str!("sql/migrate_current.sql"))
                .fetch_one(&self.pool)
                .await?
        } else {
            None
        };
        check_existing_schema(found, SCHEMA_VERSION, || {
            format!(
                "database `{}` on {}:{}",
                self.database(),
                self.options.get_host(),
                self.options.get_port()
            )
        })
    }

    /// Brings the schema to [`SCHEMA_VERSION`] under a server-wide named lock.
    pub(super) async fn migrate_schema(&self) -> StoreResult<()> {
        let mut conn = self.pool.acquire().await?;
        // A named lock, not a transaction: MySQL commits around every CREATE TABLE. Lock names
        // are server-wide (and at most 64 characters), so the name is derived from the
        // database's; the server drops the lock if this connection dies.
        let database: Option<String> = sqlx::query_scalar(include_str!("sql/migrate_database.sql"))
            .fetch_one(&mut *conn)
            .await?;
        let database = database.ok_or_else(|| {
            StoreError::BadUrl("the MySQL URL names no database: mysql://USER@HOST/DB".into())
        })?;
        let lock = format!("spool migrate {:016x}", fnv1a(database.as_bytes()));
        let locked: Option<i64> = sqlx::query_scalar(include_str!("sql/migrate_lock.sql"))
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
        let released = sqlx::query(include_str!("sql/migrate_unlock.sql"))
            .bind(&lock)
            .execute(&mut *conn)
            .await;
        migrated?;
        released?;
        Ok(())
    }
}

async fn migrate_locked(conn: &mut MySqlConnection) -> StoreResult<()> {
    conn.execute(include_str!("sql/migrate_versions.sql"))
        .await?;
    let current: Option<i64> = sqlx::query_scalar(include_str!("sql/migrate_current.sql"))
        .fetch_one(&mut *conn)
        .await?;
    let current = current.unwrap_or(0);
    check_schema_version(current, SCHEMA_VERSION)?;
    if current < 1 {
        for statement in statements(include_str!("sql/schema.sql")) {
            conn.execute(sqlx::AssertSqlSafe(statement)).await?;
        }
        // Every counter row exists from the start, so bumping one is a plain UPDATE.
        let mut rows = vec!["('restart_epoch', 0, 0)".to_string()];
        for slot in 0..COUNTER_SLOTS {
            rows.push(format!("('processed', {slot}, 0), ('changes', {slot}, 0)"));
        }
        conn.execute(super::sql_with(
            include_str!("sql/migrate_counters.sql"),
            &[("rows", &rows.join(", "))],
        ))
        .await?;
        record(conn, 1).await?;
    }
    if current < 2 {
        run_again_safe(conn, include_str!("sql/schema_v2.sql")).await?;
        record(conn, 2).await?;
    }
    if current < 3 {
        run_again_safe(conn, include_str!("sql/schema_v3.sql")).await?;
        record(conn, 3).await?;
    }
    if current < 4 {
        run_again_safe(conn, include_str!("sql/schema_v4.sql")).await?;
        record(conn, 4).await?;
    }
    if current < 5 {
        run_again_safe(conn, include_str!("sql/schema_v5.sql")).await?;
        record(conn, 5).await?;
    }
    if current < 6 {
        run_again_safe(conn, include_str!("sql/schema_v6.sql")).await?;
        record(conn, 6).await?;
    }
    if current < 7 {
        run_again_safe(conn, include_str!("sql/schema_v7.sql")).await?;
        record(conn, 7).await?;
    }
    Ok(())
}

/// Runs a schema script whose statements may have run before a crash half-way through it:
/// a change found already made counts as done.
async fn run_again_safe(conn: &mut MySqlConnection, script: &str) -> StoreResult<()> {
    for statement in statements(script) {
        match conn.execute(sqlx::AssertSqlSafe(statement)).await {
            Ok(_) => {}
            Err(sqlx::Error::Database(e))
                if e.try_downcast_ref::<MySqlDatabaseError>()
                    .is_some_and(|e| ALREADY_APPLIED.contains(&e.number())) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Records that a schema version is applied.
async fn record(conn: &mut MySqlConnection, version: i64) -> StoreResult<()> {
    sqlx::query(sql(include_str!("sql/migrate_record.sql")))
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

/// The oldest servers Spool supports, for error messages.
pub const MINIMUM_VERSIONS: &str = "MySQL 8.0.1 or MariaDB 10.6";

/// Which server speaks the MySQL protocol at the other end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// Oracle MySQL (or a compatible server that does not call itself MariaDB).
    MySql,
    /// MariaDB.
    MariaDb,
}

/// A server version as `SELECT VERSION()` reports it, e.g. `10.11.19-MariaDB-0+deb12u1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerVersion {
    /// The server kind.
    pub flavor: Flavor,
    /// `major.minor.patch`.
    pub number: (u32, u32, u32),
}

impl ServerVersion {
    /// Reads a version string; `None` if it does not start with a dotted version number.
    pub fn parse(version: &str) -> Option<ServerVersion> {
        let flavor = if version.to_ascii_lowercase().contains("mariadb") {
            Flavor::MariaDb
        } else {
            Flavor::MySql
        };
        // Some MariaDB releases prefix the real version with `5.5.5-` for old clients.
        let version = match flavor {
            Flavor::MariaDb => version.strip_prefix("5.5.5-").unwrap_or(version),
            Flavor::MySql => version,
        };
        let numeric = version
            .split(|c: char| !(c.is_ascii_digit() || c == '.'))
            .next()
            .unwrap_or("");
        let mut parts = numeric.split('.').map(str::parse::<u32>);
        let major = parts.next()?.ok()?;
        let minor = parts.next()?.ok()?;
        let patch = match parts.next() {
            Some(patch) => patch.ok()?,
            None => 0,
        };
        Some(ServerVersion {
            flavor,
            number: (major, minor, patch),
        })
    }

    /// Whether this server has everything Spool uses (`SKIP LOCKED` above all).
    pub fn is_supported(&self) -> bool {
        let minimum = match self.flavor {
            Flavor::MySql => (8, 0, 1),
            Flavor::MariaDb => (10, 6, 0),
        };
        self.number >= minimum
    }
}

impl fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (major, minor, patch) = self.number;
        let name = match self.flavor {
            Flavor::MySql => "MySQL",
            Flavor::MariaDb => "MariaDB",
        };
        write!(f, "{name} {major}.{minor}.{patch}")
    }
}

/// Reads the server's version on `conn` and refuses servers Spool cannot use.
pub(super) async fn check_server(conn: &mut MySqlConnection) -> StoreResult<ServerVersion> {
    let reported: String = sqlx::query_scalar(include_str!("sql/server_version.sql"))
        .fetch_one(&mut *conn)
        .await?;
    let version = ServerVersion::parse(&reported).ok_or_else(|| {
        StoreError::ServerUnsupported(format!(
            "cannot read the server version `{reported}`; Spool needs {MINIMUM_VERSIONS} or newer"
        ))
    })?;
    if !version.is_supported() {
        return Err(StoreError::ServerUnsupported(format!(
            "{version} is too old: Spool needs {MINIMUM_VERSIONS} or newer \
             (for SELECT ... FOR UPDATE SKIP LOCKED)"
        )));
    }
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_splits_into_statements() {
        let all = statements(include_str!("sql/schema.sql"));
        assert_eq!(all.len(), 4);
        assert!(
            all.iter()
                .all(|s| s.starts_with("CREATE TABLE IF NOT EXISTS"))
        );
        assert!(all.iter().all(|s| !s.contains("--") && !s.ends_with(';')));
    }

    #[test]
    fn version_2_adds_columns_then_tables() {
        let all = statements(include_str!("sql/schema_v2.sql"));
        assert_eq!(all.iter().filter(|s| s.contains(" ADD COLUMN ")).count(), 6);
        assert_eq!(
            all.iter()
                .filter(|s| s.starts_with("CREATE TABLE IF NOT EXISTS"))
                .count(),
            6
        );
        assert!(all.iter().all(|s| !s.contains("--") && !s.ends_with(';')));
    }

    fn parsed(s: &str) -> ServerVersion {
        ServerVersion::parse(s).unwrap_or_else(|| panic!("cannot parse {s}"))
    }

    #[test]
    fn versions_are_read_and_judged() {
        let cases = [
            (
                "10.11.19-MariaDB-0+deb12u1",
                Flavor::MariaDb,
                (10, 11, 19),
                true,
            ),
            (
                "5.5.5-10.6.2-MariaDB-log",
                Flavor::MariaDb,
                (10, 6, 2),
                true,
            ),
            ("10.5.2-MariaDB", Flavor::MariaDb, (10, 5, 2), false),
            ("11.4.2-MariaDB", Flavor::MariaDb, (11, 4, 2), true),
            ("8.0.36", Flavor::MySql, (8, 0, 36), true),
            ("8.0.0-dmr-log", Flavor::MySql, (8, 0, 0), false),
            ("8.0.1", Flavor::MySql, (8, 0, 1), true),
            ("8.4.0-commercial", Flavor::MySql, (8, 4, 0), true),
            ("5.7.44", Flavor::MySql, (5, 7, 44), false),
            ("9.1", Flavor::MySql, (9, 1, 0), true),
        ];
        for (text, flavor, number, supported) in cases {
            let v = parsed(text);
            assert_eq!((v.flavor, v.number), (flavor, number), "{text}");
            assert_eq!(v.is_supported(), supported, "{text}");
        }
        assert_eq!(parsed("10.5.2-MariaDB").to_string(), "MariaDB 10.5.2");
    }

    #[test]
    fn garbage_is_not_a_version() {
        for text in ["", "MariaDB", "x.1.2", "8"] {
            assert_eq!(ServerVersion::parse(text), None, "{text}");
        }
    }
}
