//! PgBouncer in front of the local PostgreSQL, for tests: one per pool mode and test process,
//! started as the `postgres` user on a port of its own (PgBouncer refuses to run as root) and
//! stopped when the test process exits. Used by the library's and the command's tests.

use std::{
    net::{TcpListener, TcpStream},
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use sqlx::postgres::PgConnectOptions;
use tokio::sync::OnceCell;

/// PgBouncer's `pool_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PoolMode {
    /// A server connection per client connection.
    Session,
    /// A server connection per transaction.
    Transaction,
    /// Session mode with `ignore_startup_parameters = extra_float_digits`, the usual
    /// work-around for drivers that send it.
    SessionIgnoringFloatDigits,
    /// Transaction mode with `ignore_startup_parameters = options`, which hides the pooler from
    /// the store's detection, and one server connection, so that every client meets every
    /// other's prepared statements.
    TransactionHidden,
}

impl PoolMode {
    fn name(self) -> &'static str {
        match self {
            PoolMode::Session | PoolMode::SessionIgnoringFloatDigits => "session",
            PoolMode::Transaction | PoolMode::TransactionHidden => "transaction",
        }
    }

    /// Lines added to the ini.
    fn extra_ini(self) -> &'static str {
        match self {
            PoolMode::TransactionHidden => {
                "ignore_startup_parameters = options\ndefault_pool_size = 1\n"
            }
            PoolMode::SessionIgnoringFloatDigits => {
                "ignore_startup_parameters = extra_float_digits\ndefault_pool_size = 40\n"
            }
            PoolMode::Session | PoolMode::Transaction => "default_pool_size = 40\n",
        }
    }
}

static SESSION: OnceCell<Option<String>> = OnceCell::const_new();
static SESSION_IGNORING: OnceCell<Option<String>> = OnceCell::const_new();
static TRANSACTION: OnceCell<Option<String>> = OnceCell::const_new();
static TRANSACTION_HIDDEN: OnceCell<Option<String>> = OnceCell::const_new();

/// The URL of a PgBouncer in `mode` in front of the test database (started on first use);
/// `None` (and `SKIPPED`) when the `pgbouncer` binary or the server is missing outside CI.
pub(crate) async fn bouncer_url(mode: PoolMode) -> Option<String> {
    let cell = match mode {
        PoolMode::Session => &SESSION,
        PoolMode::SessionIgnoringFloatDigits => &SESSION_IGNORING,
        PoolMode::Transaction => &TRANSACTION,
        PoolMode::TransactionHidden => &TRANSACTION_HIDDEN,
    };
    cell.get_or_init(|| async move {
        tokio::task::spawn_blocking(move || start(mode))
            .await
            .unwrap()
    })
    .await
    .clone()
}

/// Writes an ini and a user list to a new directory owned by `postgres`, starts PgBouncer on
/// a free port and waits until it accepts connections.
fn start(mode: PoolMode) -> Option<String> {
    let Some(binary) = which("pgbouncer") else {
        let why = "the pgbouncer binary is not installed (apt-get install pgbouncer)";
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{why} (CI=true: the PgBouncer tests need it)");
        }
        eprintln!("SKIPPED: PgBouncer tests: {why}");
        return None;
    };
    let dir = tempfile::Builder::new()
        .prefix("spool-pgbouncer-")
        .tempdir()
        .expect("a temp dir")
        .keep();
    let port = free_port();
    let server = std::env::var("SPOOL_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let target: PgConnectOptions = server.parse().expect("the test URL parses");
    let ini = format!(
        "[databases]\n\
         * = host={host} port={pg_port}\n\
         [pgbouncer]\n\
         listen_addr = 127.0.0.1\n\
         listen_port = {port}\n\
         unix_socket_dir =\n\
         auth_type = trust\n\
         auth_file = {dir}/userlist.txt\n\
         pool_mode = {mode}\n\
         max_client_conn = 1000\n\
         {extra}\
         logfile = {dir}/pgbouncer.log\n\
         pidfile = {dir}/pgbouncer.pid\n",
        host = target.get_host(),
        pg_port = target.get_port(),
        dir = dir.display(),
        mode = mode.name(),
        extra = mode.extra_ini(),
    );
    std::fs::write(dir.join("pgbouncer.ini"), ini).expect("write the ini");
    std::fs::write(
        dir.join("userlist.txt"),
        format!("\"{}\" \"\"\n", target.get_username()),
    )
    .expect("write the user list");
    // PgBouncer refuses to run as root: run it as `postgres`, which must own its files. A
    // watchdog shell stops it once this test process is gone, and removes its directory.
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let watchdog = "\"$1\" \"$2\" & child=$!; \
                    while [ -d /proc/$3 ] && kill -0 $child 2>/dev/null; do sleep 0.5; done; \
                    kill $child 2>/dev/null; wait $child; rm -rf \"$4\"";
    let args = [
        "-c",
        watchdog,
        "watchdog",
        &binary,
        &dir.join("pgbouncer.ini").display().to_string(),
        &std::process::id().to_string(),
        &dir.display().to_string(),
    ];
    let mut command = if root {
        chown_to_postgres(&dir);
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", "sh"]);
        c
    } else {
        Command::new("sh")
    };
    let mut watchdog = command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start pgbouncer");
    // Reaped when it ends (with PgBouncer, or when this process exits).
    std::thread::spawn(move || watchdog.wait());
    let deadline = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(dir.join("pgbouncer.log")).unwrap_or_default();
            panic!("pgbouncer did not start on port {port}:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // Trust authentication on both legs: the user name is all the URL needs.
    Some(format!(
        "postgres://{}@127.0.0.1:{port}/{}",
        target.get_username(),
        target.get_database().unwrap_or("postgres")
    ))
}

fn which(binary: &str) -> Option<String> {
    let paths = std::env::var("PATH").unwrap_or_default();
    std::env::split_paths(&format!("{paths}:/usr/sbin:/usr/local/sbin"))
        .map(|dir| dir.join(binary))
        .find(|path| path.is_file())
        .map(|path| path.display().to_string())
}

fn chown_to_postgres(dir: &Path) {
    let done = Command::new("chown")
        .args(["-R", "postgres:postgres"])
        .arg(dir)
        .status()
        .expect("run chown");
    assert!(done.success(), "chown {} to postgres failed", dir.display());
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}
