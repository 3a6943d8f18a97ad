//! Workflows from the command line: batches with callbacks, chains and unique jobs, so any
//! language can use them through `spool dispatch --stdin`.

mod common;

use common::Env;

fn queue_count(env: &Env, queue: &str) -> u64 {
    let status = env.json(&["status", "--json"]);
    status["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == queue)
        .map_or(0, |q| q["pending"].as_u64().unwrap())
}

#[test]
fn a_stdin_batch_counts_its_jobs_and_pushes_its_callbacks() {
    let env = Env::new();
    let lines = concat!(
        "{\"job\":\"noop\",\"payload\":{\"n\":1}}\n",
        "{\"job\":\"noop\",\"payload\":{\"n\":2}}\n",
        "{\"job\":\"fail\",\"payload\":{},\"tries\":1}\n",
    );
    let out = env.with_stdin(
        &[
            "dispatch",
            "--stdin",
            "--json",
            "--batch",
            "nightly",
            "--allow-failures",
            "--then",
            r#"{"job":"noop","queue":"then"}"#,
            "--catch",
            r#"{"job":"noop","queue":"catch"}"#,
            "--finally",
            r#"{"job":"noop","queue":"finally","payload":{"note":"done"}}"#,
        ],
        lines,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let batch_id = doc["batch_id"].as_str().unwrap().to_string();
    assert_eq!(doc["jobs"].as_array().unwrap().len(), 3);
    assert_eq!(doc["jobs"][0]["status"], "queued");

    let listed = env.json(&["batches", "--json"]);
    let b = &listed["batches"][0];
    assert_eq!(b["id"], batch_id.as_str());
    assert_eq!(
        (
            b["name"].as_str(),
            b["total"].as_u64(),
            b["pending"].as_u64()
        ),
        (Some("nightly"), Some(3), Some(3))
    );
    for key in [
        "id",
        "name",
        "total",
        "pending",
        "failed",
        "progress",
        "cancelled_at",
        "finished_at",
    ] {
        assert!(b.get(key).is_some(), "batches --json lacks `{key}`: {b}");
    }

    env.ok(&[
        "work",
        "--queue",
        "default",
        "--until-done",
        "--sleep",
        "50ms",
    ]);
    let shown = env.json(&["batches", "show", &batch_id, "--json"]);
    assert_eq!(
        (
            shown["pending"].as_u64(),
            shown["failed"].as_u64(),
            shown["progress"].as_u64()
        ),
        (Some(0), Some(1), Some(100))
    );
    assert!(shown["finished_at"].is_string());
    assert_eq!(
        (
            queue_count(&env, "catch"),
            queue_count(&env, "finally"),
            queue_count(&env, "then")
        ),
        (1, 1, 0)
    );
    // The callback's payload is as dispatched: its batch is in the envelope's context.
    let finally = env.json(&["jobs", "--queue", "finally", "--json"]);
    let id = finally["jobs"][0]["id"].as_str().unwrap().to_string();
    let job = env.json(&["job", &id, "--json"]);
    assert_eq!(job["payload"], serde_json::json!({"note": "done"}));

    let out = env.ok(&["retry-batch", &batch_id]);
    assert!(out.contains("retried 1"), "{out}");
    let shown = env.json(&["batches", "show", &batch_id, "--json"]);
    assert_eq!(
        (shown["pending"].as_u64(), shown["failed"].as_u64()),
        (Some(1), Some(0))
    );
    env.ok(&["prune-batches", "--hours", "1"]);
    assert_eq!(
        env.json(&["batches", "--json"])["batches"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "an unfinished batch stays"
    );
    env.ok(&["prune-batches", "--unfinished", "0"]);
    assert!(
        env.json(&["batches", "--json"])["batches"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn chains_and_unique_jobs_from_the_cli() {
    let env = Env::new();
    let chain = r#"{"chain":[{"job":"noop","queue":"a"},{"job":"noop","queue":"b"},{"job":"noop","queue":"c"}]}"#;
    let out = env.with_stdin(&["dispatch", "--stdin", "--json"], &format!("{chain}\n"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        (queue_count(&env, "a"), queue_count(&env, "b")),
        (1, 0),
        "only the head is queued"
    );
    env.ok(&["work", "--queue", "a,b", "--until-done", "--sleep", "50ms"]);
    assert_eq!(queue_count(&env, "c"), 1, "links ran in order up to c");

    let first = env.json(&[
        "dispatch",
        "noop",
        "--unique-key",
        "report:9",
        "--unique-for",
        "1h",
        "--json",
    ]);
    let second = env.json(&["dispatch", "noop", "--unique-key", "report:9", "--json"]);
    assert_eq!(
        (first["status"].as_str(), second["status"].as_str()),
        (Some("queued"), Some("already_queued"))
    );
    // The duplicate names the job that holds the lock, which `spool job` finds.
    assert_eq!(second["id"], first["id"]);
    env.ok(&["job", first["id"].as_str().unwrap()]);
    let line = "{\"job\":\"noop\",\"unique_key\":\"report:9\"}\n";
    let out = env.with_stdin(&["dispatch", "--stdin", "--json"], line);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc[0]["status"], "already_queued");
    assert_eq!(doc[0]["id"], first["id"]);
    let bad = env.with_stdin(
        &["dispatch", "--stdin"],
        "{\"job\":\"noop\",\"unique_for\":\"1h\"}\n",
    );
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("`unique_for` needs `unique_key`"));
}

#[test]
fn a_chain_line_in_a_batch_counts_once() {
    let env = Env::new();
    let lines = concat!(
        "{\"chain\":[{\"job\":\"noop\"},{\"job\":\"noop\"},{\"job\":\"noop\"}]}\n",
        "{\"job\":\"noop\"}\n",
    );
    let out = env.with_stdin(
        &[
            "dispatch",
            "--stdin",
            "--json",
            "--batch",
            "mixed",
            "--then",
            r#"{"job":"noop","queue":"then"}"#,
        ],
        lines,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let batch_id = doc["batch_id"].as_str().unwrap().to_string();
    env.ok(&[
        "work",
        "--queue",
        "default",
        "--until-done",
        "--sleep",
        "50ms",
    ]);
    let shown = env.json(&["batches", "show", &batch_id, "--json"]);
    assert_eq!(
        (shown["total"].as_u64(), shown["pending"].as_u64()),
        (Some(2), Some(0))
    );
    assert_eq!(queue_count(&env, "then"), 1);
    assert_eq!(
        env.json(&["status", "--json"])["processed"].as_u64(),
        Some(4),
        "3 links and a job"
    );
}

/// The issue's example: a strict `shell` callback of a batch runs (Spool adds nothing to its
/// payload) and reads its batch from `SPOOL_BATCH_ID`.
#[test]
fn a_shell_callback_runs_and_reads_its_batch_from_the_environment() {
    let env = Env::new();
    let lines = "{\"job\":\"noop\"}\n{\"job\":\"fail\",\"tries\":1}\n";
    let callback = r#"{"job":"shell","payload":{"cmd":"echo \"done $SPOOL_BATCH_ID $SPOOL_JOB_ID\" >> cb.txt"}}"#;
    let out = env.with_stdin(
        &[
            "dispatch",
            "--stdin",
            "--json",
            "--batch",
            "b",
            "--allow-failures",
            "--finally",
            callback,
        ],
        lines,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let batch_id = doc["batch_id"].as_str().unwrap().to_string();
    env.ok(&[
        "work",
        "--allow",
        "shell",
        "--until-done",
        "--sleep",
        "50ms",
    ]);
    let failed = env.json(&["failed", "--json"]);
    let failed = failed["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "only the `fail` job failed: {failed:?}");
    assert_eq!(failed[0]["job"], "fail");
    let written = std::fs::read_to_string(env.dir.join("cb.txt")).expect("the callback ran");
    let words: Vec<&str> = written.split_whitespace().collect();
    assert_eq!(words.len(), 3, "{written}");
    assert_eq!((words[0], words[1]), ("done", batch_id.as_str()));
}

/// Queue names no worker can serve are refused everywhere they can be given, with the rule.
#[test]
fn queue_names_that_break_the_rule_are_refused() {
    let env = Env::new();
    let rule = "a queue name is 1-128 characters of ASCII letters, digits and `. _ : - /`, starting with a letter or digit";
    for queue in ["a,b", " high ", ""] {
        let out = env.run(&["dispatch", "noop", "--queue", queue]);
        assert!(!out.status.success(), "{queue:?} was accepted");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(rule),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = env.with_stdin(
        &["dispatch", "--stdin"],
        "{\"job\":\"noop\"}\n{\"job\":\"noop\",\"queue\":\"x y\"}\n",
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(rule));
    let chain = r#"{"chain":[{"job":"noop"},{"job":"noop","queue":"a,b"}]}"#;
    let out = env.with_stdin(&["dispatch", "--stdin"], &format!("{chain}\n"));
    assert!(!out.status.success(), "a bad link is refused like the head");
    let out = env.run(&[
        "dispatch",
        "noop",
        "--batch",
        "b",
        "--then",
        r#"{"job":"noop","queue":"t t"}"#,
    ]);
    assert!(!out.status.success(), "a bad callback is refused");
    assert_eq!(env.queued(), 0, "nothing was enqueued");
    let out = env.run(&["work", "--queue", "a b", "--once"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(rule));
}
