//! The `spool` command's contract: names, exit codes and `--json` shapes (docs/cli.md).

mod common;

use std::{
    io::{BufRead, BufReader, Write},
    net::TcpListener,
};

use common::Env;
use serde_json::Value;

#[test]
fn dispatch_is_idempotent_with_an_id_and_prints_json() {
    let env = Env::new();
    let first = env.json(&["dispatch", "noop", "--id", "order-1", "--json"]);
    assert_eq!(
        first,
        serde_json::json!({"id": "order-1", "queue": "default", "status": "queued"})
    );
    let again = env.json(&[
        "dispatch", "noop", "--id", "order-1", "--json", "--queue", "default",
    ]);
    assert_eq!(again["status"], "already_queued");
    let plain = env.ok(&[
        "dispatch",
        "sleep",
        "--payload",
        r#"{"ms":1}"#,
        "--queue",
        "emails",
        "--delay",
        "60",
    ]);
    assert_eq!(plain.trim().len(), 36, "a UUID: {plain}");
    let many = env.ok(&["dispatch", "noop", "--count", "3"]);
    assert_eq!(many.lines().count(), 3);

    let status = env.json(&["status", "--json"]);
    let queues = status["queues"].as_array().unwrap();
    let names: Vec<&str> = queues.iter().map(|q| q["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["default", "emails"]);
    assert_eq!(
        (queues[0]["pending"].as_u64(), queues[1]["delayed"].as_u64()),
        (Some(4), Some(1))
    );
    for key in ["pending", "delayed", "reserved", "oldest_ready_age_ms"] {
        assert!(queues[0][key].is_u64(), "{key}");
    }
    assert_eq!(
        (status["processed"].as_u64(), status["failed"].as_u64()),
        (Some(0), Some(0))
    );
    assert!(status["workers"].as_array().unwrap().is_empty());

    let job = env.json(&["job", "order-1", "--json"]);
    assert_eq!(
        (
            job["state"].as_str(),
            job["attempts"].as_u64(),
            job["job"].as_str()
        ),
        (Some("pending"), Some(0), Some("noop"))
    );
    let delayed = env.json(&["jobs", "--state", "delayed", "--json"]);
    assert_eq!(delayed["jobs"].as_array().unwrap().len(), 1);
    assert_eq!(env.ok(&["size", "emails"]).trim(), "emails 1");
    assert_eq!(env.run(&["job", "nope"]).status.code(), Some(1));
    let id = delayed["jobs"][0]["id"].as_str().unwrap().to_string();
    env.ok(&["job", &id, "--run-now"]);
    assert_eq!(env.json(&["job", &id, "--json"])["state"], "pending");
    env.ok(&["job", &id, "--delete"]);
    assert_eq!(env.run(&["job", &id]).status.code(), Some(1));
    assert!(
        env.ok(&["clear", "--queue", "default"])
            .contains("cleared 4 job(s)")
    );
}

#[test]
fn negative_tries_and_bad_payloads_are_refused() {
    let env = Env::new();
    let out = env.run(&["dispatch", "noop", "--tries", "-1"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("tries must be 0 (unlimited) or more"));
    let out = env.run(&["dispatch", "noop", "--payload", "{oops"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--payload is not valid JSON"));
    assert_eq!(env.queued(), 0);
}

#[test]
fn stdin_dispatch_is_all_or_nothing() {
    let env = Env::new();
    let good = "{\"job\":\"noop\"}\n{\"job\":\"sleep\",\"payload\":{\"ms\":1},\"queue\":\"q2\",\"delay\":\"1s\",\"tries\":2,\"backoff\":[1,2],\"timeout\":\"5s\"}\n\n{\"job\":\"noop\",\"id\":\"fixed\"}\n";
    let out = env.with_stdin(&["dispatch", "--stdin"], good);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ids: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(ids.len(), 3);
    assert_eq!(ids[2], "fixed");
    assert_eq!(env.queued(), 3);

    let bad = "{\"job\":\"noop\"}\n{\"job\":\"noop\",\"colour\":\"red\"}\n";
    let out = env.with_stdin(&["dispatch", "--stdin"], bad);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2: unknown field `colour`"), "{err}");
    assert_eq!(
        env.queued(),
        3,
        "nothing from the refused input was enqueued"
    );
}

#[test]
fn failed_jobs_can_be_listed_shown_retried_forgotten_and_flushed() {
    let env = Env::new();
    let id = env.ok(&[
        "dispatch",
        "fail",
        "--payload",
        r#"{"message":"card declined"}"#,
        "--tries",
        "1",
        "--queue",
        "billing",
    ]);
    let id = id.trim();
    env.ok(&[
        "dispatch",
        "shell",
        "--payload",
        r#"{"cmd":"echo partial output; exit 3"}"#,
        "--tries",
        "1",
    ]);
    env.ok(&["dispatch", "panic", "--tries", "1"]);
    let out = env.run(&[
        "work",
        "--queue",
        "billing,default",
        "--until-done",
        "--allow",
        "shell",
        "--sleep",
        "100ms",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let failed = env.json(&["failed", "--json"]);
    assert_eq!(failed["total"], 3);
    let records = failed["failed"].as_array().unwrap();
    let by_job = |job: &str| records.iter().find(|r| r["job"] == job).unwrap().clone();
    let card = by_job("fail");
    assert_eq!(
        (card["id"].as_str(), card["error"].as_str()),
        (Some(id), Some("card declined"))
    );
    for key in ["queue", "causes", "attempts", "failed_at"] {
        assert!(!card[key].is_null(), "{key}");
    }
    let shell = by_job("shell");
    assert_eq!(
        shell["error"],
        "command `echo partial output; exit 3` failed with exit status 3"
    );
    assert_eq!(shell["causes"][0], "stdout: partial output");
    assert!(
        by_job("panic")["error"]
            .as_str()
            .unwrap()
            .starts_with("panicked: ")
    );
    let billing = env.json(&["failed", "--queue", "billing", "--json"]);
    assert_eq!(billing["total"], 1);
    assert!(
        env.ok(&["failed", "show", id])
            .contains("error:     card declined")
    );

    env.ok(&["retry", id]);
    assert_eq!(env.json(&["job", id, "--json"])["attempts"], 0);
    assert_eq!(env.run(&["retry", "nope"]).status.code(), Some(1));
    assert_eq!(env.run(&["forget", "nope"]).status.code(), Some(1));
    let shell_id = shell["id"].as_str().unwrap();
    env.ok(&["forget", shell_id]);
    assert!(
        env.ok(&["flush"])
            .contains("deleted 1 failed job record(s)")
    );
    assert!(
        env.ok(&["prune-failed", "--hours", "1"])
            .contains("pruned 0")
    );
    assert!(env.ok(&["restart"]).contains("restart signalled"));
    assert!(env.ok(&["migrate"]).contains("up to date"));
}

#[test]
fn privileged_jobs_need_allow() {
    let env = Env::new();
    let id = env.ok(&["dispatch", "shell", "--payload", r#"{"cmd":"true"}"#]);
    env.ok(&["work", "--until-done", "--sleep", "100ms"]);
    let record = env.json(&["failed", "show", id.trim(), "--json"]);
    assert_eq!(record["error"], "start the worker with --allow shell");
    env.ok(&["retry", "all"]);
    env.ok(&[
        "work",
        "--until-done",
        "--allow",
        "shell",
        "--sleep",
        "100ms",
    ]);
    let status = env.json(&["status", "--json"]);
    assert_eq!(
        (status["processed"].as_u64(), status["failed"].as_u64()),
        (Some(1), Some(0))
    );
}

/// A one-connection-at-a-time HTTP server answering with the given responses in turn.
fn http_server(responses: Vec<&'static str>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for (stream, response) in listener.incoming().zip(responses) {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap() > 2 {
                line.clear();
            }
            stream.write_all(response.as_bytes()).unwrap();
        }
    });
    format!("http://{addr}/hook")
}

#[test]
fn http_jobs_defer_on_retry_after_and_fail_with_the_status() {
    let env = Env::new();
    let url = http_server(vec![
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 11\r\nConnection: close\r\n\r\nbad gateway",
    ]);
    let payload = format!(r#"{{"url":"{url}","method":"POST","body":{{"a":1}}}}"#);
    env.ok(&["dispatch", "http", "--payload", &payload, "--tries", "1"]);
    let started = std::time::Instant::now();
    env.ok(&[
        "work",
        "--until-done",
        "--allow",
        "http",
        "--concurrency",
        "1",
        "--sleep",
        "100ms",
    ]);
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(1),
        "the Retry-After was honoured"
    );
    let status: Value = env.json(&["status", "--json"]);
    assert_eq!(
        (status["processed"].as_u64(), status["failed"].as_u64()),
        (Some(1), Some(0)),
        "deferral used no attempt"
    );

    let id = env.ok(&["dispatch", "http", "--payload", &payload, "--tries", "1"]);
    env.ok(&[
        "work",
        "--until-done",
        "--allow",
        "http",
        "--sleep",
        "100ms",
    ]);
    let record = env.json(&["failed", "show", id.trim(), "--json"]);
    assert_eq!(
        record["error"],
        format!("POST {url} answered HTTP 500 Internal Server Error")
    );
    assert_eq!(record["causes"][0], "body: bad gateway");
}

#[test]
fn the_demo_runs_and_leaves_one_failure() {
    let env = Env::new();
    let out = env.ok(&["demo", "--jobs", "60"]);
    assert!(out.contains("1 failed for good"), "{out}");
    let failed = env.json(&["failed", "--json"]);
    assert_eq!(failed["total"], 1);
    assert_eq!(env.queued(), 0);
}

/// A row another program wrote with an envelope that is not UTF-8 text: `spool jobs` lists
/// every job and flags it, `work --until-done` fails it with the reason and ends, and the good
/// job behind it runs.
#[test]
fn a_row_that_cannot_be_read_is_flagged_failed_and_blocks_nothing() {
    let env = Env::new();
    let bad = env.ok(&["dispatch", "noop"]).trim().to_string();
    env.ok(&["dispatch", "noop"]);
    let conn = spool::store::sqlite::rusqlite::Connection::open(env.dir.join("spool.db")).unwrap();
    conn.execute(
        "UPDATE spool_jobs SET envelope = ?1 WHERE id = ?2",
        (vec![0xffu8, 0xfe, b'{'], &bad),
    )
    .unwrap();
    drop(conn);
    let listed = env.ok(&["jobs"]);
    assert!(
        listed.contains("cannot run: unreadable envelope"),
        "{listed}"
    );
    env.ok(&["work", "--until-done"]);
    assert_eq!(
        env.queued(),
        0,
        "the good job ran and the bad one left the queue"
    );
    let failed = env.ok(&["failed", "show", &bad]);
    assert!(failed.contains("not UTF-8"), "{failed}");
}
