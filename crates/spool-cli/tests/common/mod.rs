//! Helpers for driving the real `spool` binary against a scratch SQLite file.
#![allow(dead_code, missing_docs)]

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

pub(crate) struct Env {
    pub dir: PathBuf,
    pub url: String,
}

impl Env {
    pub(crate) fn new() -> Env {
        let dir = tempfile::tempdir().expect("temp dir").keep();
        let url = format!("sqlite://{}", dir.join("spool.db").display());
        Env { dir, url }
    }

    pub(crate) fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_spool"));
        cmd.arg("--url")
            .arg(&self.url)
            .args(args)
            .env("SPOOL_LOG", "warn")
            .current_dir(&self.dir);
        cmd
    }

    /// Runs to completion; panics on a non-zero exit.
    pub(crate) fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "spool {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    }

    pub(crate) fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("spool runs")
    }

    pub(crate) fn json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.ok(args);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("not one JSON document ({e}): {out}"))
    }

    pub(crate) fn with_stdin(&self, args: &[&str], input: &str) -> Output {
        let mut child = self
            .cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    /// `dispatch --stdin` with `args` and one request per line of `lines`; panics if refused.
    pub(crate) fn dispatch_lines(&self, args: &[&str], lines: &str) {
        let mut all = vec!["dispatch", "--stdin"];
        all.extend(args);
        let out = self.with_stdin(&all, lines);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub(crate) fn spawn(&self, args: &[&str]) -> Child {
        self.cmd(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spool starts")
    }

    /// pending + delayed + reserved over all queues.
    pub(crate) fn queued(&self) -> u64 {
        let status = self.json(&["status", "--json"]);
        status["queues"]
            .as_array()
            .unwrap()
            .iter()
            .map(|q| {
                q["pending"].as_u64().unwrap()
                    + q["delayed"].as_u64().unwrap()
                    + q["reserved"].as_u64().unwrap()
            })
            .sum()
    }
}

/// Sends a signal (`"KILL"`, `"TERM"`) with the system's `kill`.
pub(crate) fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{sig} failed");
}

pub(crate) fn postgres_url() -> String {
    std::env::var("SPOOL_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// Drops the scratch PostgreSQL schema of `env`, if it has one.
pub(crate) fn drop_schema(env: &Env) {
    use sqlx::Connection;
    let Some((_, schema)) = env.url.split_once("spool_schema=") else {
        return;
    };
    let schema = schema.to_string();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        if let Ok(mut conn) = sqlx::PgConnection::connect(&postgres_url()).await {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
            )))
            .execute(&mut conn)
            .await;
        }
    });
}

/// A scratch SQLite store, and a scratch schema on PostgreSQL when it answers.
pub(crate) fn stores() -> Vec<Env> {
    let mut envs = vec![Env::new()];
    let mut pg = Env::new();
    pg.url = format!(
        "{}?spool_schema=spool_test_sup_{:08x}",
        postgres_url(),
        fastrand::u32(..)
    );
    let out = pg.run(&["migrate"]);
    if out.status.success() {
        envs.push(pg);
    } else if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "PostgreSQL unreachable under CI: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        eprintln!(
            "SKIPPED: PostgreSQL unreachable at {}: {}",
            postgres_url(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    envs
}

/// A free loopback port.
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One HTTP request once the server listens (within 20 s): the status and the body.
pub(crate) fn http(addr: SocketAddr, method: &str, path: &str, headers: &[&str]) -> (u16, String) {
    http_with_body(addr, method, path, headers, "")
}

/// [`http`] with a request body.
pub(crate) fn http_with_body(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[&str],
    body: &str,
) -> (u16, String) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut stream = loop {
        match TcpStream::connect(addr) {
            Ok(s) => break s,
            Err(e) => {
                assert!(Instant::now() < deadline, "nothing listens on {addr}: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for header in headers {
        text.push_str(header);
        text.push_str("\r\n");
    }
    text.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(text.as_bytes()).unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    let status = reply
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP reply: {reply}"));
    let body = reply
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}
