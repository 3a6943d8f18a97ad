//! What `spool work` logs: one line per processed job, one summary line at the stop, no
//! per-poll noise at debug, and JSON lines for log shippers (docs/cli.md, "Logs").

mod common;

use common::Env;
use serde_json::Value;

/// Runs `work --until-done` over two noop jobs with `SPOOL_LOG=level` and `extra` flags;
/// returns its stderr.
fn work_logs(env: &Env, level: &str, extra: &[&str]) -> String {
    env.ok(&["dispatch", "noop", "--count", "2"]);
    let mut args = vec!["work", "--until-done", "--sleep", "50ms"];
    args.extend_from_slice(extra);
    let out = env
        .cmd(&args)
        .env("SPOOL_LOG", level)
        .output()
        .expect("spool runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stderr).expect("utf-8")
}

#[test]
fn each_processed_job_logs_one_info_line_and_the_stop_one_summary() {
    let env = Env::new();
    let logs = work_logs(&env, "info", &[]);
    let processed: Vec<&str> = logs.lines().filter(|l| l.contains("processed")).collect();
    assert_eq!(processed.len(), 2, "{logs}");
    for line in processed {
        assert!(line.contains("INFO"), "{line}");
        for field in [
            "queue=default",
            "job=noop",
            "id=",
            "attempt=1",
            "elapsed_ms=",
        ] {
            assert!(line.contains(field), "{field} missing: {line}");
        }
    }
    let stops: Vec<&str> = logs.lines().filter(|l| l.contains("stopped")).collect();
    assert_eq!(stops.len(), 1, "one summary: {logs}");
    assert!(
        stops[0].contains("reason=Done") && stops[0].contains("completed=2"),
        "{}",
        stops[0]
    );
    assert!(!logs.contains("WorkerExit"), "no Debug struct: {logs}");
}

#[test]
fn debug_logs_leave_the_per_poll_events_to_trace() {
    let env = Env::new();
    let logs = work_logs(&env, "debug", &["--concurrency", "1"]);
    assert!(!logs.contains("worker.looping"), "{logs}");
    assert!(logs.contains("processed"), "{logs}");
}

#[test]
fn json_logs_are_one_object_per_line_from_the_flag_or_the_environment() {
    let env = Env::new();
    let from_flag = work_logs(&env, "info", &["--log-format", "json"]);
    let env2 = Env::new();
    env2.ok(&["dispatch", "noop", "--count", "2"]);
    let out = env2
        .cmd(&["work", "--until-done", "--sleep", "50ms"])
        .env("SPOOL_LOG", "info")
        .env("SPOOL_LOG_FORMAT", "json")
        .output()
        .unwrap();
    let from_env = String::from_utf8(out.stderr).unwrap();
    for logs in [from_flag, from_env] {
        let lines: Vec<Value> = logs
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect();
        let processed: Vec<&Value> = lines
            .iter()
            .filter(|l| l["fields"]["message"] == "processed")
            .collect();
        assert!(processed.len() >= 2, "{logs}");
        let span = &processed[0]["span"];
        assert_eq!(
            (span["queue"].as_str(), span["job"].as_str()),
            (Some("default"), Some("noop"))
        );
        let stop = lines
            .iter()
            .find(|l| l["fields"]["message"] == "worker stopped")
            .expect("a stop line");
        assert_eq!(stop["fields"]["completed"], 2);
    }
    let bad = env.run(&["--log-format", "xml", "status"]);
    assert_eq!(bad.status.code(), Some(2));
}

/// A job dispatched with a W3C trace context logs under its dispatcher's trace: the trace id
/// and the dispatcher's span id are fields of the `job` span, in text and JSON lines alike.
#[test]
fn a_traced_jobs_lines_carry_the_dispatchers_trace_id() {
    let env = Env::new();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dispatch = || {
        runtime.block_on(async {
            let store = spool::connect(&env.url).await.unwrap();
            spool::Spool::new(store)
                .dispatch(spool::builtin::Noop {})
                .trace(spool::TraceContext {
                    traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
                    tracestate: None,
                })
                .await
                .unwrap();
        })
    };
    dispatch();
    let out = env
        .cmd(&[
            "work",
            "--until-done",
            "--sleep",
            "50ms",
            "--log-format",
            "json",
        ])
        .env("SPOOL_LOG", "info")
        .output()
        .unwrap();
    let logs = String::from_utf8(out.stderr).unwrap();
    let processed: Value = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["fields"]["message"] == "processed")
        .unwrap_or_else(|| panic!("no processed line: {logs}"));
    assert_eq!(
        processed["span"]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736",
        "{logs}"
    );
    assert_eq!(
        processed["span"]["parent_span_id"], "00f067aa0ba902b7",
        "{logs}"
    );
    dispatch();
    // The traced job runs beside two untraced ones (`work_logs` dispatches them), in any order.
    let text = work_logs(&env, "info", &[]);
    let processed: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("processed") && l.contains("job=noop"))
        .collect();
    assert_eq!(processed.len(), 3, "{text}");
    let traced: Vec<&&str> = processed
        .iter()
        .filter(|l| l.contains("trace_id="))
        .collect();
    assert_eq!(
        traced.len(),
        1,
        "only the traced job carries a trace: {text}"
    );
    assert!(
        traced[0]
            .contains("trace_id=4bf92f3577b34da6a3ce929d0e0e4736 parent_span_id=00f067aa0ba902b7"),
        "{}",
        traced[0]
    );
}

/// A worker whose stderr reader went away (a log shipper that died, a test harness that
/// exited) still runs its jobs: failed log writes are dropped, never a panic in the task that
/// logged, which left the job reserved under a live lease for good.
#[test]
fn a_closed_stderr_does_not_stop_the_worker() {
    let env = Env::new();
    env.ok(&["dispatch", "noop", "--count", "3"]);
    let mut worker = env
        .cmd(&["work", "--sleep", "50ms"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spool work starts");
    // Nobody reads its stderr any more.
    drop(worker.stderr.take());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let processed = loop {
        let status = env.json(&["status", "--json"]);
        let processed = status["processed"].as_u64().unwrap_or(0);
        if processed == 3 || std::time::Instant::now() > deadline {
            break processed;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let _ = worker.kill();
    let _ = worker.wait();
    assert_eq!(processed, 3, "the worker ran its jobs with a closed stderr");
}

/// `spool dispatch --traceparent` (or `TRACEPARENT` in its environment) puts the jobs under
/// that trace; a value that is not a W3C traceparent is refused and nothing is enqueued.
#[test]
fn dispatch_takes_a_traceparent_from_its_flag_or_environment() {
    let env = Env::new();
    let bad = env.run(&["dispatch", "noop", "--traceparent", "00-zz-00-01"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("not a W3C traceparent"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let flag = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let from_env = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    env.ok(&["dispatch", "noop", "--traceparent", flag]);
    let out = env
        .cmd(&["dispatch", "noop"])
        .env("TRACEPARENT", from_env)
        .output()
        .unwrap();
    assert!(out.status.success());
    // A malformed inherited one is ignored with a warning: the dispatch still happens.
    let out = env
        .cmd(&["dispatch", "noop"])
        .env("TRACEPARENT", "garbage")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("TRACEPARENT ignored"));
    let out = env
        .cmd(&["work", "--until-done", "--sleep", "50ms"])
        .env("SPOOL_LOG", "info")
        .output()
        .unwrap();
    let logs = String::from_utf8(out.stderr).unwrap();
    for (trace, span) in [
        ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"),
        ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"),
    ] {
        assert!(
            logs.lines().any(|l| l.contains("processed")
                && l.contains(&format!("trace_id={trace} parent_span_id={span}"))),
            "{logs}"
        );
    }
    assert_eq!(env.json(&["status", "--json"])["processed"], 3);
}
