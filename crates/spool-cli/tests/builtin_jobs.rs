//! The privileged built-in jobs under a real worker: what `shell` children can see and how
//! their failures read, and what `http` jobs send, read and refuse.

mod common;

use std::{
    io::{BufRead, BufReader, Write},
    net::{TcpListener, TcpStream},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use common::Env;
use serde_json::{Value, json};

/// Runs the worker until its queues are empty, with `extra` flags and environment.
fn work(env: &Env, extra: &[&str], vars: &[(&str, &str)]) -> std::process::Output {
    let mut args = vec!["work", "--until-done", "--sleep", "100ms"];
    args.extend_from_slice(extra);
    let mut cmd = env.cmd(&args);
    for (name, value) in vars {
        cmd.env(name, value);
    }
    let out = cmd.output().expect("spool runs");
    assert!(
        out.status.success(),
        "work failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn dispatch(env: &Env, job: &str, payload: &Value) -> String {
    env.ok(&[
        "dispatch",
        job,
        "--payload",
        &payload.to_string(),
        "--tries",
        "3",
        "--backoff",
        "0",
    ])
    .trim()
    .to_string()
}

fn record(env: &Env, id: &str) -> Value {
    env.json(&["failed", "show", id, "--json"])
}

const KEY: &str = "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=";

#[test]
fn shell_children_do_not_inherit_spool_secrets() {
    let env = Env::new();
    let id = dispatch(
        &env,
        "shell",
        &json!({"cmd": "env | grep -E '^(SPOOL_|APP_)' | sort >&2; exit 1"}),
    );
    let url = env.url.clone();
    work(
        &env,
        &["--allow", "shell", "--tries", "1"],
        &[
            ("SPOOL_KEY", KEY),
            ("SPOOL_PREVIOUS_KEYS", KEY),
            ("SPOOL_URL", &url),
            ("SPOOL_DASHBOARD_TOKEN", "dash-secret"),
            ("SPOOL_OPENAI_KEY", "sk-provider"),
            ("APP_SETTING", "visible"),
        ],
    );
    let text = record(&env, &id).to_string();
    assert!(text.contains("APP_SETTING=visible"), "{text}");
    for secret in [KEY, "dash-secret", "sk-provider", url.as_str()] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
}

#[test]
fn a_command_over_the_argument_limit_fails_once_with_the_cause() {
    let env = Env::new();
    // One argument over the kernel's 128 KiB per-argument limit (MAX_ARG_STRLEN).
    let cmd = format!("echo {}", "x".repeat(200 * 1024));
    let line = json!({"job": "shell", "payload": {"cmd": cmd}, "tries": 3, "backoff": [0]});
    let out = env.with_stdin(&["dispatch", "--stdin"], &format!("{line}\n"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    work(&env, &["--allow", "shell"], &[]);
    let failed = env.json(&["failed", "--json"]);
    let rec = &failed["failed"][0];
    assert_eq!(rec["attempts"], 1, "not retried: {rec}");
    let error = rec["error"].as_str().unwrap();
    assert!(
        error.contains("over the system's limit for one argument"),
        "{error}"
    );
    assert!(error.len() < 400, "the command is shortened: {error}");
}

#[test]
fn shell_failures_quote_a_short_command_and_no_empty_output() {
    let env = Env::new();
    let cmd = format!(
        "true {} ; exit 4",
        "https://user:secret@example.com/x ".repeat(10)
    );
    let id = dispatch(&env, "shell", &json!({ "cmd": cmd }));
    work(&env, &["--allow", "shell", "--tries", "1"], &[]);
    let rec = record(&env, &id);
    let error = rec["error"].as_str().unwrap();
    assert!(error.starts_with("command `true https://"), "{error}");
    assert!(error.ends_with("…` failed with exit status 4"), "{error}");
    assert!(error.chars().count() < 130, "{error}");
    assert_eq!(rec["causes"], json!([]), "no empty stdout/stderr causes");
    let shown = env.ok(&["failed", "show", &id]);
    assert!(!shown.contains("caused by"), "{shown}");
}

/// A local HTTP server that keeps each request's head and answers the `n`th connection
/// with `respond(n, stream)`.
struct Server {
    base: String,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start(respond: impl Fn(usize, &mut TcpStream) + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let heads = seen.clone();
        let respond = Arc::new(respond);
        std::thread::spawn(move || {
            for (n, stream) in listener.incoming().enumerate() {
                let mut stream = stream.unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut head = String::new();
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap_or(0) > 2 {
                    head.push_str(&line.to_ascii_lowercase());
                    line.clear();
                }
                heads.lock().unwrap().push(head);
                // Each connection on its own thread: a stalled reply must not hold up the next.
                let respond = respond.clone();
                std::thread::spawn(move || respond(n, &mut stream));
            }
        });
        Server { base, seen }
    }

    /// Answers every request with `reply`.
    fn replying(reply: String) -> Server {
        Server::start(move |_, s| s.write_all(reply.as_bytes()).unwrap())
    }

    fn requests(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

const OK: &str = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
const ERROR: &str =
    "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\nConnection: close\r\n\r\noops";

fn redirect(to: &str) -> String {
    format!(
        "HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
}

#[test]
fn redirects_are_followed_only_within_the_origin() {
    let env = Env::new();
    let other = Server::replying(OK.into());
    let target = format!("{}/collect", other.base);
    let origin = Server::start(move |n, s| {
        let reply = match n {
            0 => redirect(&target),
            1 => redirect("/moved"),
            _ => OK.to_string(),
        };
        s.write_all(reply.as_bytes()).unwrap();
    });
    let headers = json!({"x-api-key": "key-123"});
    let away = dispatch(
        &env,
        "http",
        &json!({"url": origin.base.clone() + "/a", "headers": headers}),
    );
    work(&env, &["--allow", "http", "--concurrency", "1"], &[]);
    assert!(
        other.requests().is_empty(),
        "the key left the origin: {:?}",
        other.requests()
    );
    let rec = record(&env, &away);
    assert_eq!(rec["attempts"], 1, "{rec}");
    assert!(
        rec["error"]
            .as_str()
            .unwrap()
            .contains("redirected to another origin"),
        "{rec}"
    );

    let home = dispatch(
        &env,
        "http",
        &json!({"url": origin.base.clone() + "/b", "headers": headers}),
    );
    work(&env, &["--allow", "http", "--concurrency", "1"], &[]);
    assert_eq!(
        env.run(&["failed", "show", &home]).status.code(),
        Some(1),
        "same-origin redirect ran"
    );
    let heads = origin.requests();
    assert!(
        heads[2].starts_with("get /moved ") && heads[2].contains("x-api-key: key-123"),
        "{heads:?}"
    );
}

#[test]
fn an_error_reply_is_read_only_as_far_as_the_excerpt() {
    let env = Env::new();
    let server = Server::start(|_, s| {
        let head = "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 300000000\r\n\r\n";
        s.write_all(head.as_bytes()).unwrap();
        // The reader may hang up after its excerpt, before all of this is written.
        let _ = s.write_all(&[b'x'; 64 * 1024]);
        // The rest of the 300 MB never comes: a reader that wants it all waits.
        std::thread::sleep(Duration::from_secs(60));
    });
    let id = env.ok(&[
        "dispatch",
        "http",
        "--payload",
        &json!({"url": server.base.clone() + "/big"}).to_string(),
        "--tries",
        "1",
    ]);
    let id = id.trim();
    let started = Instant::now();
    work(&env, &["--allow", "http", "--tries", "1"], &[]);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    let cause = record(&env, id)["causes"][0].as_str().unwrap().to_string();
    assert!(
        cause.starts_with("body: xxx") && cause.ends_with('…'),
        "{cause}"
    );
    assert!(cause.len() < 5000, "{}", cause.len());
}

#[test]
fn allow_host_limits_targets_and_metadata_addresses_are_refused() {
    let env = Env::new();
    let server = Server::replying(OK.into());
    let url = server.base.clone() + "/hook";
    let elsewhere = dispatch(&env, "http", &json!({ "url": url }));
    work(
        &env,
        &["--allow", "http", "--allow-host", "api.example.com"],
        &[],
    );
    assert!(server.requests().is_empty());
    let rec = record(&env, &elsewhere);
    assert_eq!(rec["attempts"], 1, "{rec}");
    assert!(
        rec["error"]
            .as_str()
            .unwrap()
            .contains("not one the worker allows"),
        "{rec}"
    );

    let metadata = dispatch(
        &env,
        "http",
        &json!({"url": "http://169.254.169.254/latest/meta-data/"}),
    );
    let named = dispatch(&env, "http", &json!({ "url": url }));
    work(&env, &["--allow", "http", "--allow-host", "127.0.0.1"], &[]);
    assert_eq!(server.requests().len(), 1, "the named host was reached");
    assert_eq!(env.run(&["failed", "show", &named]).status.code(), Some(1));
    let rec = record(&env, &metadata);
    assert!(
        rec["error"]
            .as_str()
            .unwrap()
            .contains("not one the worker allows"),
        "{rec}"
    );

    let unnamed = dispatch(
        &env,
        "http",
        &json!({"url": "http://169.254.169.254/latest/meta-data/"}),
    );
    work(&env, &["--allow", "http"], &[]);
    let rec = record(&env, &unnamed);
    assert_eq!(rec["attempts"], 1, "{rec}");
    assert!(
        rec["error"]
            .as_str()
            .unwrap()
            .contains("link-local or cloud metadata"),
        "{rec}"
    );
}

#[test]
fn a_header_can_take_its_value_from_the_workers_environment() {
    let env = Env::new();
    let server = Server::replying(OK.into());
    let headers = json!({"x-api-key": {"env": "HOOK_API_KEY"}});
    dispatch(
        &env,
        "http",
        &json!({"url": server.base.clone() + "/hook", "headers": headers}),
    );
    work(
        &env,
        &["--allow", "http"],
        &[("HOOK_API_KEY", "from-env-42")],
    );
    let heads = server.requests();
    assert_eq!(heads.len(), 1);
    assert!(heads[0].contains("x-api-key: from-env-42"), "{heads:?}");
    assert_eq!(env.json(&["failed", "--json"])["total"], 0);

    let spool_key = dispatch(
        &env,
        "http",
        &json!({"url": server.base.clone() + "/hook", "headers": {"x": {"env": "SPOOL_KEY"}}}),
    );
    work(&env, &["--allow", "http"], &[("SPOOL_KEY", KEY)]);
    assert_eq!(server.requests().len(), 1, "no request with Spool's key");
    let rec = record(&env, &spool_key);
    assert!(
        rec["error"]
            .as_str()
            .unwrap()
            .contains("Spool's own secrets"),
        "{rec}"
    );
}

#[test]
fn http_failures_show_urls_without_credentials_or_queries() {
    let env = Env::new();
    let server = Server::replying(ERROR.into());
    let port = server.base.rsplit(':').next().unwrap().to_string();
    let answered = dispatch(
        &env,
        "http",
        &json!({"url": format!("http://user:pw-123@127.0.0.1:{port}/hook?api_key=qk-456")}),
    );
    // A port nothing listens on: reqwest's own error names the URL.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let unanswered = dispatch(
        &env,
        "http",
        &json!({"url": format!("http://user:pw-123@{closed}/hook?api_key=qk-456")}),
    );
    let out = work(
        &env,
        &["--allow", "http", "--tries", "1"],
        &[("SPOOL_LOG", "info")],
    );
    let logs = String::from_utf8_lossy(&out.stderr).to_string();
    for id in [&answered, &unanswered] {
        let rec = record(&env, id);
        let shown = format!("{} {}", rec["error"], rec["causes"]);
        assert!(shown.contains("http://***@127.0.0.1:"), "{shown}");
        for secret in ["pw-123", "qk-456", "api_key"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
            assert!(!logs.contains(secret), "{secret} in the logs: {logs}");
        }
    }
}
