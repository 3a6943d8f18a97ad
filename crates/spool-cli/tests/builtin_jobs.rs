//! The privileged built-in jobs under a real worker: what `shell` children can see and how
//! their failures read, and what `http` jobs send, read and refuse.

mod common;

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
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    work(&env, &["--allow", "shell"], &[]);
    let failed = env.json(&["failed", "--json"]);
    let rec = &failed["failed"][0];
    assert_eq!(rec["attempts"], 1, "not retried: {rec}");
    let error = rec["error"].as_str().unwrap();
    assert!(error.contains("over the system's limit for one argument"), "{error}");
    assert!(error.len() < 400, "the command is shortened: {error}");
}

#[test]
fn shell_failures_quote_a_short_command_and_no_empty_output() {
    let env = Env::new();
    let cmd = format!("true {} ; exit 4", "https://user:secret@example.com/x ".repeat(10));
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
