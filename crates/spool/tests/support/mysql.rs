//! MySQL / MariaDB locations: a database of its own, written raw through sqlx.

use std::sync::Arc;

use spool::{Store, store::mysql::MysqlStore};
use spool_conformance::{Raw, Value};
use sqlx::{Connection, MySqlConnection};
use tokio::sync::OnceCell;

use super::{Fresh, Location, is_leftover, unique_name, unreachable};

/// The server: `SPOOL_TEST_MYSQL_URL`, else the local test server.
pub(crate) fn mysql_url() -> String {
    std::env::var("SPOOL_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into())
}

/// A new, empty database; `None` when the server is unreachable outside CI.
pub(crate) async fn mysql() -> Option<Fresh> {
    let base = mysql_url();
    let name = unique_name();
    match MysqlStore::create_database(&base, &name).await {
        Ok(()) => {}
        Err(e) if e.is_unavailable() => return unreachable("mysql", &base, &e),
        Err(e) => panic!(
            "cannot open MySQL at {base}: {e}; set SPOOL_TEST_MYSQL_URL to a server the tests may \
             create databases on"
        ),
    }
    SWEPT.get_or_init(|| drop_leftover_databases(&base)).await;
    // The same server, the new database.
    let server = base
        .rsplit_once('/')
        .map_or(base.as_str(), |(server, _)| server);
    let url = format!("{server}/{name}");
    Some(Fresh {
        url,
        backend: "mysql",
        location: Location::Database { base, name },
    })
}

pub(super) async fn open(url: &str) -> Arc<dyn Store> {
    Arc::new(MysqlStore::open(url).await.expect("open the MySQL store"))
}

static SWEPT: OnceCell<()> = OnceCell::const_new();

/// Drops the test databases earlier runs left behind. Best effort: another test process may
/// be doing the same, so failures are reported and ignored.
async fn drop_leftover_databases(url: &str) {
    let mut conn = match MySqlConnection::connect(url).await {
        Ok(conn) => conn,
        Err(e) => return eprintln!("cannot drop leftover test databases: {e}"),
    };
    let names: Vec<String> = match sqlx::query_scalar(
        "SELECT CAST(SCHEMA_NAME AS CHAR) FROM information_schema.SCHEMATA
         WHERE SCHEMA_NAME LIKE 'spool\\_test\\_%'",
    )
    .fetch_all(&mut conn)
    .await
    {
        Ok(names) => names,
        Err(e) => return eprintln!("cannot list leftover test databases: {e}"),
    };
    let _ = conn.close().await;
    for name in names.into_iter().filter(|n| is_leftover(n)) {
        if let Err(e) = MysqlStore::drop_database(url, &name).await {
            eprintln!("cannot drop leftover test database {name}: {e}");
        }
    }
}

pub(super) async fn raw(url: &str, write: Raw) -> Result<(), String> {
    let mut conn = MySqlConnection::connect(url)
        .await
        .map_err(|e| e.to_string())?;
    let done = match write {
        Raw::Sql { statement, binds } if binds.is_empty() => {
            sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
                .execute(&mut conn)
                .await
        }
        Raw::Sql { statement, binds } => {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(statement));
            for value in binds {
                query = match value {
                    Value::Null => query.bind(None::<String>),
                    Value::Int(n) => query.bind(n),
                    Value::Text(s) => query.bind(s),
                    Value::Bytes(b) => query.bind(b),
                };
            }
            query.execute(&mut conn).await
        }
        Raw::SchemaVersion(version) => {
            sqlx::query("INSERT INTO spool_migrations (version, applied_at) VALUES (?, 0)")
                .bind(version)
                .execute(&mut conn)
                .await
        }
        Raw::Redis(_) => return Err("MySQL takes SQL, not Redis commands".into()),
    };
    let _ = conn.close().await;
    done.map(|_| ()).map_err(|e| e.to_string())
}

pub(super) async fn schema_version(url: &str) -> i64 {
    let mut conn = MySqlConnection::connect(url).await.expect("connect");
    let version: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM spool_migrations")
        .fetch_one(&mut conn)
        .await
        .expect("read the schema version");
    version.unwrap_or(0)
}

/// The database as version 1 left it, with one job queued, and half of version 2 applied
/// already (as an upgrade that crashed midway leaves it): the upgrade must finish it.
pub(super) async fn write_version_1(url: &str, job_id: &str) -> Result<(), String> {
    let mut conn = MySqlConnection::connect(url)
        .await
        .map_err(|e| e.to_string())?;
    let v1 = include_str!("../../src/store/mysql/sql/schema.sql");
    let mut setup: Vec<String> = vec![
        "CREATE TABLE spool_migrations (version BIGINT NOT NULL PRIMARY KEY, applied_at BIGINT NOT NULL) ENGINE = InnoDB".into(),
    ];
    setup.extend(
        v1.split(";\n")
            .map(|s| {
                s.lines()
                    .filter(|l| !l.trim_start().starts_with("--"))
                    .map(|l| l.split(" --").next().unwrap_or(l))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .filter(|s| !s.trim().is_empty()),
    );
    setup.push("INSERT INTO spool_migrations VALUES (1, 0)".into());
    for statement in setup {
        sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
    }
    sqlx::query(
        "INSERT INTO spool_jobs (id, queue, job, envelope, available_at, created_at)
         VALUES (?, 'default', 'noop', '{}', 0, 0)",
    )
    .bind(job_id)
    .execute(&mut conn)
    .await
    .map_err(|e| e.to_string())?;
    // Half of version 2 already applied (a crash during the upgrade).
    sqlx::query("ALTER TABLE spool_jobs ADD COLUMN batch_id VARCHAR(255) NULL")
        .execute(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    let _ = conn.close().await;
    Ok(())
}
