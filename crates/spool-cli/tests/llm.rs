//! The built-in `llm` job against `spool mock-llm`, with real worker processes: a 429 parks
//! the provider key for every process until the instant it names and uses no try; a spent
//! quota fails at once and blocks the key until `spool llm resume`; configuration errors fail
//! without retries; the shared cache answers repeats; the API key appears in no output.

mod common;

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use common::{Env, http_with_body};
use serde_json::{Value, json};

const KEY: &str = "sk-test-7f3a9c1e55d2";

/// A `spool mock-llm` process and its request log.
struct Mock {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Mock {
    fn start(flags: &[&str]) -> Mock {
        let log = tempfile::tempdir().unwrap().keep().join("mock-llm.jsonl");
        let mut child = Command::new(env!("CARGO_BIN_EXE_spool"))
            .args([
                "mock-llm",
                "--bind",
                "127.0.0.1:0",
                "--api-key",
                KEY,
                "--log",
            ])
            .arg(&log)
            .args(flags)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spool mock-llm starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("mock-llm listening on http://")
            .and_then(|rest| rest.strip_suffix("/v1"))
            .unwrap_or_else(|| panic!("unexpected first line: {line}"))
            .parse()
            .unwrap();
        Mock { child, addr, log }
    }

    fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The next requests get these answers instead of the normal ones.
    fn script(&self, responses: Value) {
        let (status, body) = http_with_body(
            self.addr,
            "POST",
            "/mock/script",
            &["Content-Type: application/json"],
            &responses.to_string(),
        );
        assert!(status < 300, "{status} {body}");
    }

    /// Every request so far, in arrival order.
    fn requests(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let mut all: Vec<Value> = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        all.sort_by(|a, b| {
            a["at_ms"]
                .as_f64()
                .partial_cmp(&b["at_ms"].as_f64())
                .unwrap()
        });
        all
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A store in a scratch directory whose spool.toml points provider `mock` at `mock`.
fn env_for(mock: &Mock, extra: &str) -> Env {
    let env = Env::new();
    std::fs::write(
        env.dir.join("spool.toml"),
        format!(
            "[[llm.provider]]\nname = \"mock\"\nbase_url = \"{}\"\napi_key_env = \"MOCK_KEY\"\n{extra}",
            mock.base_url()
        ),
    )
    .unwrap();
    env
}

fn worker(env: &Env, flags: &[&str]) -> Child {
    let mut args = vec!["work", "--allow", "llm"];
    args.extend(flags);
    env.cmd(&args)
        .env("MOCK_KEY", KEY)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("worker starts")
}

fn request_line(n: usize, model: &str) -> String {
    json!({"job": "llm", "payload": {
        "model": model,
        "messages": [{"role": "user", "content": format!("Write section {n} of the report.")}],
        "max_tokens": 40,
    }})
    .to_string()
}

/// Waits until `done` jobs completed and `failed` failed (or panics after 60 s).
fn wait_for(env: &Env, done: u64, failed: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = env.json(&["status", "--json"]);
        let (p, f) = (
            status["processed"].as_u64().unwrap(),
            status["failed"].as_u64().unwrap(),
        );
        if p + f >= done + failed {
            assert_eq!((p, f), (done, failed), "{status}");
            return;
        }
        assert!(Instant::now() < deadline, "not done in time: {status}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs a worker with the key until it stops (its flags say when); panics if it fails.
fn work_once(env: &Env, flags: &[&str]) {
    let mut args = vec!["work", "--allow", "llm"];
    args.extend(flags);
    let out = env.cmd(&args).env("MOCK_KEY", KEY).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Stops the workers; their output.
fn stop(children: Vec<Child>) -> String {
    let mut output = String::new();
    for child in children {
        common::signal(&child, "TERM");
        let out = child.wait_with_output().unwrap();
        output.push_str(&String::from_utf8_lossy(&out.stdout));
        output.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    output
}

#[test]
fn a_429_parks_the_key_for_every_worker_process_and_uses_no_try() {
    let mock = Mock::start(&["--latency", "20ms..60ms"]);
    let env = env_for(&mock, "rpm = 3000\n");
    // The first two requests are told to wait 1.2 s.
    mock.script(json!([
        {"rate_limited": {"retry_after_ms": 1200}},
        {"rate_limited": {"retry_after_ms": 1200}}
    ]));
    let lines: String = (0..40)
        .map(|n| request_line(n, "gpt-test") + "\n")
        .collect();
    env.dispatch_lines(&[], &lines);
    // Three processes; with one try each, a 429 that used a try would fail its job.
    let workers: Vec<Child> = (0..3)
        .map(|_| worker(&env, &["--concurrency", "4", "--tries", "1"]))
        .collect();
    wait_for(&env, 40, 0);
    let logs = stop(workers);
    assert!(!logs.contains(KEY), "the key leaked into a worker's output");

    let requests = mock.requests();
    let limited: Vec<&Value> = requests.iter().filter(|r| r["status"] == 429).collect();
    assert!(!limited.is_empty(), "the scripted 429 was answered");
    for r429 in &limited {
        let at = r429["at_ms"].as_f64().unwrap();
        let until = at + r429["retry_after_ms"].as_f64().unwrap();
        // Requests already on their way when the 429 was answered may still land; after
        // that (the pause is recorded within milliseconds, 50 ms allowed for a loaded
        // machine) none may arrive before `until`.
        let early: Vec<f64> = requests
            .iter()
            .map(|r| r["at_ms"].as_f64().unwrap())
            .filter(|t| *t > at + 50.0 && *t < until - 1.0)
            .map(|t| t - at)
            .collect();
        assert!(
            early.is_empty(),
            "requests {early:?} ms after a 429 that said {until} ms"
        );
    }
    let answered = requests.iter().filter(|r| r["status"] == 200).count();
    assert_eq!(answered, 40, "every job paid for exactly one answer");
    let status = env.json(&["llm", "status", "--json"]);
    let key = &status["providers"][0];
    assert_eq!(key["key"], "mock");
    assert_eq!(
        key["state"]["http_429"].as_u64(),
        Some(limited.len() as u64)
    );
    assert_eq!(key["state"]["requests_today"], 40);
    assert!(!status.to_string().contains(KEY));
}

#[test]
fn a_spent_quota_fails_at_once_and_blocks_the_key_until_resumed() {
    let mock = Mock::start(&[]);
    let env = env_for(&mock, "");
    mock.script(json!([{"insufficient_quota": null}]));
    env.dispatch_lines(&["--json"], &(request_line(1, "gpt-test") + "\n"));
    work_once(&env, &["--stop-when-empty", "--tries", "3"]);
    // A spent quota is no reason to retry: the job failed on its first try.
    let failed = env.json(&["failed", "--json"]);
    let record = &failed["failed"][0];
    assert_eq!(record["attempts"], 1, "{failed}");
    let error = record["error"].as_str().unwrap();
    assert!(
        error.contains("insufficient_quota") && error.contains("spool llm resume mock"),
        "{error}"
    );
    let status = env.json(&["llm", "status", "--json"]);
    assert!(status["providers"][0]["blocked"].is_string(), "{status}");

    // While blocked, a job fails without a request reaching the provider.
    let before = mock.requests().len();
    env.dispatch_lines(&[], &(request_line(2, "gpt-test") + "\n"));
    work_once(&env, &["--stop-when-empty"]);
    assert_eq!(
        mock.requests().len(),
        before,
        "nothing is sent on a blocked key"
    );
    assert_eq!(env.json(&["failed", "--json"])["total"], 2);

    let resumed = env.ok(&["llm", "resume", "mock"]);
    assert!(resumed.contains("resumed: mock"), "{resumed}");
    env.ok(&["retry", "all"]);
    work_once(&env, &["--stop-when-empty"]);
    assert_eq!(env.json(&["failed", "--json"])["total"], 0);
}

#[test]
fn configuration_errors_fail_at_once_naming_the_reason() {
    let mock = Mock::start(&["--model", "gpt-test"]);
    let env = env_for(&mock, "");
    let lines = [
        // A model the server does not have: 404.
        request_line(1, "no-such-model"),
        // A provider nobody configured.
        json!({"job": "llm", "payload": {"provider": "nope", "model": "gpt-test", "messages": []}})
            .to_string(),
        // No model at all.
        json!({"job": "llm", "payload": {"messages": []}}).to_string(),
    ]
    .join("\n");
    env.dispatch_lines(&[], &lines);
    work_once(&env, &["--stop-when-empty", "--tries", "5"]);
    let failed = env.json(&["failed", "--json"]);
    let mut errors: Vec<String> = failed["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            assert_eq!(
                f["attempts"], 1,
                "no try is spent on a configuration error: {f}"
            );
            f["error"].as_str().unwrap().to_string()
        })
        .collect();
    errors.sort();
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(
        errors
            .iter()
            .any(|e| e.contains("no provider is called `nope`")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("404") && e.contains("model_not_found")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|e| e.contains("names no \"model\"")),
        "{errors:?}"
    );

    // Without the key variable, the job fails naming the variable, not a value.
    env.dispatch_lines(&[], &(request_line(3, "gpt-test") + "\n"));
    env.ok(&[
        "work",
        "--allow",
        "llm",
        "--stop-when-empty",
        "--tries",
        "5",
    ]);
    let failed = env.json(&["failed", "--json"]);
    assert!(
        failed.to_string().contains("MOCK_KEY is not set"),
        "{failed}"
    );
    assert!(!failed.to_string().contains(KEY));

    // And without --allow llm the job is refused, as shell and http are.
    env.dispatch_lines(&[], &(request_line(4, "gpt-test") + "\n"));
    env.ok(&["work", "--stop-when-empty"]);
    assert!(
        env.json(&["failed", "--json"])
            .to_string()
            .contains("--allow llm")
    );
}

#[test]
fn identical_requests_are_answered_from_the_shared_cache() {
    let mock = Mock::start(&[]);
    let env = env_for(&mock, "cache_ttl = \"1h\"\n");
    for _ in 0..2 {
        env.dispatch_lines(&[], &(request_line(7, "gpt-test") + "\n"));
        work_once(&env, &["--stop-when-empty"]);
    }
    assert_eq!(
        mock.requests().len(),
        1,
        "the second job was answered from the cache"
    );
    let status = env.json(&["llm", "status", "--json"]);
    assert_eq!(status["providers"][0]["state"]["cache_hits"], 1, "{status}");
    // `spool stats` reports the key's use today: one call paid, one answered from the cache.
    let stats = env.json(&["stats", "--json"]);
    let key = &stats["llm"][0];
    assert_eq!(
        (
            &key["requests_today"],
            &key["cache_hits"],
            &key["paid_again"]
        ),
        (&json!(1), &json!(1), &json!(0)),
        "{stats}"
    );
}

#[test]
fn answers_that_are_not_json_are_retried() {
    let mock = Mock::start(&[]);
    let env = env_for(&mock, "");
    mock.script(json!(["not_json"]));
    let out = env.json(&[
        "dispatch",
        "llm",
        "--json",
        "--payload",
        &json!({"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]}).to_string(),
    ]);
    let id = out["id"].as_str().unwrap().to_string();
    work_once(&env, &["--until-done", "--tries", "2", "--backoff", "0"]);
    assert_eq!(env.json(&["failed", "--json"])["total"], 0);
    let job = env.json(&["job", &id, "--json"]);
    assert_eq!(job["state"], "completed", "{job}");
    assert!(
        job["result"]["content"]
            .as_str()
            .is_some_and(|c| !c.is_empty()),
        "{job}"
    );
    assert_eq!(mock.requests().len(), 2);
}

#[test]
fn shell_jobs_do_not_see_the_provider_keys() {
    let mock = Mock::start(&[]);
    let env = env_for(&mock, "");
    let line = json!({"job": "shell", "tries": 1, "payload": {"cmd": "echo \"k=$MOCK_KEY o=$OPENAI_API_KEY\"; exit 1"}});
    env.dispatch_lines(&[], &format!("{line}\n"));
    let out = env
        .cmd(&["work", "--allow", "shell", "--stop-when-empty"])
        .env("MOCK_KEY", KEY)
        .env("OPENAI_API_KEY", KEY)
        .output()
        .unwrap();
    assert!(out.status.success());
    let failed = env.json(&["failed", "--json"]).to_string();
    assert!(failed.contains("k= o="), "{failed}");
    assert!(!failed.contains(KEY), "{failed}");
}
