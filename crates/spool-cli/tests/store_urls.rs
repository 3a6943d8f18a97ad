//! How the `spool` binary opens a store from a URL: which commands may create one, the URL
//! forms it accepts, the errors it gives, and that a URL's secrets never reach its output.

mod common;

use std::process::{Command, Output};

use common::Env;
use sqlx::Connection;

/// Every command that only reads or administers a store, with the arguments it needs.
const READ_ONLY: &[&[&str]] = &[
    &["status"],
    &["jobs"],
    &["job", "some-id"],
    &["size"],
    &["clear", "--queue", "default"],
    &["restart"],
    &["failed"],
    &["retry", "some-id"],
    &["forget", "some-id"],
    &["flush"],
    &["prune-failed"],
    &["batches"],
    &["retry-batch", "some-id"],
    &["prune-batches"],
];

fn spool(url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_spool"))
        .arg("--url")
        .arg(url)
        .args(args)
        .env("SPOOL_LOG", "warn")
        .env_remove("SPOOL_URL")
        .output()
        .expect("spool runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts that `args` failed with exit code 1 and "no Spool store at <shown>".
fn assert_no_store(url: &str, args: &[&str], shown: &str) {
    check_no_store(&spool(url, args), args, shown);
}

/// Asserts that `out` (of `spool args`) is exit code 1 and "no Spool store at <shown>".
fn check_no_store(out: &Output, args: &[&str], shown: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "spool {args:?}: {err}");
    assert!(
        err.contains(&format!("no Spool store at {shown}"))
            && err.contains("(run `spool migrate` first)"),
        "spool {args:?}: {err}"
    );
}

fn under_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

fn skip(server: &str, e: impl std::fmt::Display) {
    assert!(!under_ci(), "{server} unreachable under CI: {e}");
    eprintln!("SKIPPED: {server} unreachable: {e}");
}

#[test]
fn read_only_commands_never_create_a_sqlite_file() {
    let env = Env::new();
    for args in READ_ONLY {
        assert_no_store(&env.url, args, &env.url);
        let left: Vec<_> = std::fs::read_dir(&env.dir).unwrap().collect();
        assert!(left.is_empty(), "spool {args:?} left {left:?}");
    }
    // `sqlite:` (sqlx's form) and a SQLite file of someone else's are no store either.
    let other = env.dir.join("other.db");
    std::fs::write(&other, b"").unwrap();
    assert_no_store(
        &format!("sqlite:{}", other.display()),
        &["failed"],
        "sqlite:",
    );
    std::fs::remove_file(&other).unwrap();
    env.ok(&["migrate"]);
    assert!(env.ok(&["failed"]).contains("no failed jobs"));
}

#[test]
fn sqlx_forms_of_sqlite_urls_are_accepted_or_explained() {
    let env = Env::new();
    let url = format!("sqlite:{}", env.dir.join("jobs.db").display());
    let out = spool(&url, &["dispatch", "noop"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = spool(&url, &["size"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "default 1");
    let out = spool("sqlite::memory:", &["dispatch", "noop"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("in-memory") && err.contains("sqlite://PATH"),
        "{err}"
    );
}

#[test]
fn unknown_schemes_are_refused_with_the_accepted_forms() {
    for args in [
        &["bench", "--url", "ftp://x"][..],
        &["--url", "ftp://x", "status"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_spool"))
            .args(args)
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains("unknown scheme `ftp`"), "{args:?}: {err}");
        for form in ["sqlite://PATH", "postgres://", "mysql://", "redis://"] {
            assert!(err.contains(form), "{args:?}: {err}");
        }
        assert!(!err.contains("lookup"), "{args:?}: {err}");
    }
}

#[test]
fn a_sqlite_file_in_a_missing_directory_names_the_directory() {
    let env = Env::new();
    let dir = env.dir.join("no-such-dir");
    let url = format!("sqlite://{}", dir.join("spool.db").display());
    let out = spool(&url, &["dispatch", "noop"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("its directory {} does not exist", dir.display())),
        "{err}"
    );
    assert!(!err.contains("server is running"), "{err}");
    assert!(!dir.exists());
}

#[test]
fn store_urls_never_show_their_password() {
    let env = Env::new();
    for (url, shown) in [
        (
            "postgre://admin:pw-secret@db/app".to_string(),
            "postgre://admin:***@db/app",
        ),
        (
            format!("{}?key=pw-secret", env.url),
            "sqlite://", // no store there: the URL is shown with its query value hidden
        ),
        (
            "postgres://admin:pw-secret@127.0.0.1:1/app?sslmode=disable".to_string(),
            "",
        ),
        ("redis://:pw-secret@127.0.0.1:1/0".to_string(), ""),
    ] {
        let out = spool(&url, &["status"]);
        let err = stderr(&out);
        assert!(!out.status.success(), "{url}");
        assert!(!err.contains("pw-secret"), "{url}: {err}");
        assert!(err.contains(shown), "{url}: {err}");
    }
}

fn postgres_url() -> String {
    std::env::var("SPOOL_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

fn mysql_url() -> String {
    std::env::var("SPOOL_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into())
}

fn redis_url() -> String {
    std::env::var("SPOOL_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".into())
}

fn name(kind: &str) -> String {
    format!("spool_test_{kind}_{:08x}", fastrand::u32(..))
}

/// `url` with `param` added to its query string.
fn with_param(url: &str, param: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{param}")
}

/// Replaces the user information of `url` with `userinfo`.
fn with_userinfo(url: &str, userinfo: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    format!("{scheme}://{userinfo}@{host}")
}

/// The password the store users below get: `@`, `/` and `:` all need percent-encoding.
const PASSWORD: &str = "p@ss/w:rd";
const PASSWORD_ENCODED: &str = "p%40ss%2Fw%3Ard";

#[tokio::test]
async fn postgres_read_only_commands_need_a_migrated_schema_and_accept_encoded_passwords() {
    let admin_url = postgres_url();
    let mut admin = match sqlx::PgConnection::connect(&admin_url).await {
        Ok(conn) => conn,
        Err(e) => return skip("PostgreSQL", e),
    };
    let schema = name("ro");
    let url = with_param(&admin_url, &format!("spool_schema={schema}"));
    let no_store = spool(&url, &["failed"]);
    let created: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
            .bind(&schema)
            .fetch_one(&mut admin)
            .await
            .unwrap();
    if created {
        let drop = format!("DROP SCHEMA {schema} CASCADE");
        sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
            .execute(&mut admin)
            .await
            .unwrap();
    }
    check_no_store(&no_store, &["failed"], "postgres://");
    assert!(!created, "a read-only command created schema {schema}");
    // A role whose password needs percent-encoding.
    let role = name("role");
    let setup = format!(
        "CREATE ROLE {role} LOGIN PASSWORD '{PASSWORD}'; GRANT CREATE ON DATABASE {db} TO {role};",
        db = admin_url
            .rsplit('/')
            .next()
            .unwrap()
            .split('?')
            .next()
            .unwrap()
    );
    grant(&mut admin, &setup).await;
    let role_url = with_param(
        &with_userinfo(&admin_url, &format!("{role}:{PASSWORD_ENCODED}")),
        &format!("spool_schema={schema}"),
    );
    let out = spool(&role_url, &["migrate"]);
    let migrated = out.status.success();
    let who = spool(&role_url, &["status", "--json"]);
    // Drops what the role created and its privileges, then the role.
    let drop = format!("DROP OWNED BY {role}; DROP ROLE {role};");
    sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
        .execute(&mut admin)
        .await
        .unwrap();
    assert!(migrated, "{}", stderr(&out));
    assert!(who.status.success(), "{}", stderr(&who));
}

#[tokio::test]
async fn postgres_errors_name_the_cause_without_source_lines() {
    if let Err(e) = sqlx::PgConnection::connect(&postgres_url()).await {
        return skip("PostgreSQL", e);
    }
    let (base, _) = postgres_url()
        .rsplit_once('/')
        .map(|(b, d)| (b.to_string(), d.to_string()))
        .unwrap();
    let url = format!("{base}/spool_no_such_database");
    let out = spool(&url, &["status"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("misconfigured") && err.contains("spool_no_such_database"),
        "{err}"
    );
    assert!(!err.contains(" at line "), "{err}");
    assert!(!err.contains("server is running"), "{err}");
}

#[tokio::test]
async fn postgres_migrations_log_no_server_notices() {
    if let Err(e) = sqlx::PgConnection::connect(&postgres_url()).await {
        return skip("PostgreSQL", e);
    }
    let schema = name("notice");
    let url = with_param(&postgres_url(), &format!("spool_schema={schema}"));
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_spool"))
            .arg("--url")
            .arg(&url)
            .args(args)
            .env("SPOOL_LOG", "info")
            .output()
            .unwrap()
    };
    let first = run(&["migrate"]);
    let second = run(&["work", "--until-done"]);
    let mut admin = sqlx::PgConnection::connect(&postgres_url()).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    assert!(first.status.success(), "{}", stderr(&first));
    let err = stderr(&second);
    assert!(second.status.success(), "{err}");
    assert!(!err.contains("already exists"), "{err}");
}

#[tokio::test]
async fn mysql_read_only_commands_need_a_migrated_database_and_accept_encoded_passwords() {
    let admin_url = mysql_url();
    let mut admin = match sqlx::MySqlConnection::connect(&admin_url).await {
        Ok(conn) => conn,
        Err(e) => return skip("MySQL", e),
    };
    let database = name("ro");
    let user = name("user");
    let host = "127.0.0.1";
    let setup = format!(
        "CREATE DATABASE {database}; CREATE USER '{user}'@'{host}' IDENTIFIED BY '{PASSWORD}'; \
         GRANT ALL ON {database}.* TO '{user}'@'{host}';"
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(setup))
        .execute(&mut admin)
        .await
        .unwrap();
    let (base, _) = admin_url.rsplit_once('/').unwrap();
    let admin_db_url = format!("{base}/{database}");
    let user_url = with_userinfo(&admin_db_url, &format!("{user}:{PASSWORD_ENCODED}"));
    // The raw `@` form, which a URL parser reads as part of the password.
    let raw_at_url = with_userinfo(&admin_db_url, &format!("{user}:p@ss%2Fw%3Ard"));
    let no_store = spool(&user_url, &["failed"]);
    let tables: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = ?")
            .bind(&database)
            .fetch_one(&mut admin)
            .await
            .unwrap();
    let migrated = spool(&user_url, &["migrate"]);
    let dispatched = spool(&raw_at_url, &["dispatch", "noop"]);
    let size = spool(&user_url, &["size"]);
    let wrong = spool(
        &with_userinfo(&admin_db_url, &format!("{user}:wrong-password")),
        &["status"],
    );
    let drop = format!("DROP DATABASE {database}; DROP USER '{user}'@'{host}';");
    sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
        .execute(&mut admin)
        .await
        .unwrap();
    let err = stderr(&no_store);
    assert_eq!(no_store.status.code(), Some(1), "{err}");
    assert!(
        err.contains("no Spool store at mysql://") && err.contains(":***@"),
        "{err}"
    );
    assert_eq!(tables, 0, "a read-only command created tables");
    assert!(migrated.status.success(), "{}", stderr(&migrated));
    assert!(dispatched.status.success(), "{}", stderr(&dispatched));
    assert_eq!(
        String::from_utf8_lossy(&size.stdout).trim(),
        "default 1",
        "{}",
        stderr(&size)
    );
    let err = stderr(&wrong);
    assert_eq!(wrong.status.code(), Some(1), "{err}");
    assert!(
        err.contains("misconfigured") && err.contains("Access denied"),
        "{err}"
    );
    assert!(!err.contains("wrong-password"), "{err}");
}

#[tokio::test]
async fn redis_read_only_commands_need_a_migrated_prefix_and_accept_encoded_passwords() {
    use redis::AsyncCommands;
    let admin_url = redis_url();
    let client = redis::Client::open(admin_url.as_str()).unwrap();
    let mut admin = match client.get_multiplexed_async_connection().await {
        Ok(conn) => conn,
        Err(e) => return skip("Redis", e),
    };
    let prefix = name("ro");
    let user = name("user");
    let url = with_param(&admin_url, &format!("prefix={prefix}"));
    let no_store = spool(&url, &["failed"]);
    let keys: Vec<String> = admin.keys(format!("*{prefix}*")).await.unwrap();
    if !keys.is_empty() {
        let _: () = admin.del(&keys).await.unwrap();
    }
    check_no_store(&no_store, &["failed"], "redis://");
    assert!(keys.is_empty(), "a read-only command wrote {keys:?}");
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg(&user)
        .arg("on")
        .arg(format!(">{PASSWORD}"))
        .arg(format!("~{{{prefix}*"))
        .arg(format!("~{prefix}*"))
        .arg("&*")
        .arg("+@all")
        .query_async(&mut admin)
        .await
        .unwrap();
    let user_url = with_param(
        &with_userinfo(&admin_url, &format!("{user}:{PASSWORD_ENCODED}")),
        &format!("prefix={prefix}"),
    );
    let dispatched = spool(&user_url, &["dispatch", "noop"]);
    let size = spool(&user_url, &["size"]);
    let _: () = redis::cmd("ACL")
        .arg("DELUSER")
        .arg(&user)
        .query_async(&mut admin)
        .await
        .unwrap();
    let keys: Vec<String> = admin.keys(format!("*{prefix}*")).await.unwrap();
    if !keys.is_empty() {
        let _: () = admin.del(keys).await.unwrap();
    }
    assert!(dispatched.status.success(), "{}", stderr(&dispatched));
    assert_eq!(
        String::from_utf8_lossy(&size.stdout).trim(),
        "default 1",
        "{}",
        stderr(&size)
    );
}

#[test]
fn a_raw_slash_in_a_password_says_how_to_write_it() {
    for url in [
        "postgres://app:pa/ss@127.0.0.1:1/app",
        "mysql://app:pa/ss@127.0.0.1:1/app",
        "redis://app:pa/ss@127.0.0.1:1/0",
    ] {
        let out = spool(url, &["status"]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{url}: {err}");
        assert!(err.contains("percent-encode it as %2F"), "{url}: {err}");
        assert!(!err.contains("pa/ss"), "{url}: {err}");
    }
}

/// A store that starts refusing the worker for a reason retrying cannot fix (here: its role
/// loses its privileges) stops the worker with the cause, instead of retrying for ever.
#[tokio::test]
async fn a_worker_stops_with_the_cause_when_the_store_refuses_it() {
    let admin_url = postgres_url();
    let mut admin = match sqlx::PgConnection::connect(&admin_url).await {
        Ok(conn) => conn,
        Err(e) => return skip("PostgreSQL", e),
    };
    let schema = name("refused");
    let role = name("role");
    let db = admin_url
        .rsplit('/')
        .next()
        .unwrap()
        .split('?')
        .next()
        .unwrap();
    let grant = format!("CREATE ROLE {role} LOGIN; GRANT CREATE ON DATABASE {db} TO {role};");
    self::grant(&mut admin, &grant).await;
    let role_url = with_param(
        &with_userinfo(&admin_url, &role),
        &format!("spool_schema={schema}"),
    );
    let out = spool(&role_url, &["migrate"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let worker = Command::new(env!("CARGO_BIN_EXE_spool"))
        .arg("--url")
        .arg(&role_url)
        .args(["work", "--sleep", "0.1"])
        .env("SPOOL_LOG", "warn")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let revoke = format!("REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM {role}");
    sqlx::raw_sql(sqlx::AssertSqlSafe(revoke))
        .execute(&mut admin)
        .await
        .unwrap();
    let pid = worker.id();
    let waited = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        tokio::task::spawn_blocking(move || worker.wait_with_output()),
    )
    .await;
    if waited.is_err() {
        let _ = Command::new("kill").arg(pid.to_string()).status();
    }
    let drop = format!("DROP OWNED BY {role}; DROP ROLE {role};");
    sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
        .execute(&mut admin)
        .await
        .unwrap();
    let out = waited
        .expect("the worker stops on its own")
        .unwrap()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("stopping: store misconfigured") && err.contains("permission denied"),
        "{err}"
    );
}

/// Runs a `CREATE ROLE ...; GRANT ...` script. Concurrent GRANTs on one database (other tests,
/// other runs) can collide in the catalog ("tuple concurrently updated"), which rolls the
/// whole script back; that is the server's, so it is tried again.
async fn grant(admin: &mut sqlx::PgConnection, script: &str) {
    for attempt in 1.. {
        match sqlx::raw_sql(sqlx::AssertSqlSafe(script.to_string()))
            .execute(&mut *admin)
            .await
        {
            Ok(_) => return,
            Err(e) if attempt < 5 && e.to_string().contains("concurrently updated") => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
}
