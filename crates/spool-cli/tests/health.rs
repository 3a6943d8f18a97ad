//! `spool health`: each check named with ok/FAIL; exit 0 healthy, 1 unhealthy, 3 unreachable,
//! 2 for a usage error.

mod common;

use std::time::Duration;

use common::Env;

fn health(env: &Env, args: &[&str]) -> (Option<i32>, serde_json::Value) {
    let mut all = vec!["health", "--json"];
    all.extend_from_slice(args);
    let out = env.run(&all);
    let json = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    (out.status.code(), json)
}

fn failing(report: &serde_json::Value) -> Vec<String> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

/// Waits (up to 20 s) until a worker is registered.
fn wait_for_a_worker(env: &Env) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while env.json(&["status", "--json"])["workers"]
        .as_array()
        .unwrap()
        .is_empty()
    {
        assert!(std::time::Instant::now() < deadline, "the worker registers");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn each_failing_check_is_named_and_exits_1() {
    let env = Env::new();
    env.ok(&["migrate"]);
    let (code, report) = health(&env, &[]);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["healthy"], true);
    let names: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "store",
            "workers",
            "wait",
            "heartbeats",
            "leases",
            "failed",
            "pools"
        ]
    );

    // Ready jobs and no worker.
    env.ok(&["dispatch", "noop", "--queue", "mail"]);
    let (code, report) = health(&env, &[]);
    assert_eq!(code, Some(1));
    assert_eq!(failing(&report), ["workers"], "{report}");
    assert!(report.to_string().contains("mail"));

    // And it has waited too long.
    std::thread::sleep(Duration::from_millis(20));
    let (_, report) = health(&env, &["--max-wait", "10ms"]);
    assert_eq!(failing(&report), ["workers", "wait"], "{report}");

    // A failed job over the limit.
    env.ok(&["work", "--queue", "mail", "--until-done"]);
    env.ok(&["dispatch", "fail", "--tries", "1"]);
    env.ok(&["work", "--until-done"]);
    let (code, report) = health(&env, &["--max-failed", "0"]);
    assert_eq!(code, Some(1));
    assert_eq!(failing(&report), ["failed"], "{report}");
    let (code, _) = health(&env, &["--max-failed", "1"]);
    assert_eq!(code, Some(0));

    // The table says the same.
    let out = env.run(&["health", "--max-failed", "0"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("FAIL failed") && text.contains("unhealthy"),
        "{text}"
    );
}

#[test]
fn a_live_worker_serving_the_queue_is_healthy() {
    let env = Env::new();
    env.ok(&["migrate"]);
    let mut worker = env.spawn(&["work", "--queue", "a", "--sleep", "50ms"]);
    wait_for_a_worker(&env);
    // A long job keeps one ready job behind it only if the worker is busy; a worker that
    // serves the queue is all the check asks for.
    env.ok(&[
        "dispatch",
        "sleep",
        "--queue",
        "a",
        "--payload",
        r#"{"ms":2000}"#,
    ]);
    let (code, report) = health(&env, &[]);
    let _ = worker.kill();
    let _ = worker.wait();
    assert_eq!(code, Some(0), "{report}");
}

#[test]
fn an_unreachable_store_exits_3_and_a_bad_flag_2() {
    let env = Env::new();
    let out = env
        .cmd(&["health"])
        .arg("--url")
        .arg("postgres://postgres@127.0.0.1:1/x")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("FAIL store"));
    let out = env.run(&["health", "--max-wait", "soon"]);
    assert_eq!(out.status.code(), Some(2));
}

/// Hunting a stuck job: `jobs --state reserved` and `job ID` say who holds it, since when and
/// for how long it has run.
#[test]
fn reserved_jobs_show_their_worker_reservation_time_and_running_time() {
    let env = Env::new();
    let out = env.ok(&["dispatch", "sleep", "--payload", r#"{"ms":5000}"#]);
    let id = out.trim().to_string();
    let mut worker = env.spawn(&["work", "--sleep", "50ms"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let job = loop {
        let job = env.json(&["job", &id, "--json"]);
        if job["state"] == "reserved" || std::time::Instant::now() > deadline {
            break job;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_millis(300));
    let table = env.ok(&["jobs", "--state", "reserved"]);
    let job_again = env.json(&["job", &id, "--json"]);
    let _ = worker.kill();
    let _ = worker.wait();
    assert_eq!(job["state"], "reserved", "{job}");
    assert!(job["worker"].is_string(), "{job}");
    assert!(job["reserved_at"].as_str().unwrap().ends_with('Z'), "{job}");
    assert!(
        job_again["running_for_ms"].as_u64().unwrap() >= 300,
        "{job_again}"
    );
    assert!(
        table.contains("RESERVED AT") && table.contains("RUNNING FOR") && table.contains(&id),
        "{table}"
    );
}

/// A worker killed with -9 and no other worker to reap it: once its lease expired longer ago
/// than `--max-expired`, the `leases` check fails, naming it.
#[test]
fn an_expired_lease_nobody_reaps_fails_the_leases_check() {
    let env = Env::new();
    env.ok(&["migrate"]);
    let mut worker = env.spawn(&["work", "--lease", "1s", "--sleep", "50ms"]);
    wait_for_a_worker(&env);
    common::signal(&worker, "KILL");
    worker.wait().unwrap();
    std::thread::sleep(Duration::from_millis(1800));
    let (code, report) = health(&env, &["--max-expired", "300ms"]);
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(failing(&report), ["leases"], "{report}");
    assert!(
        report.to_string().contains(&worker.id().to_string()),
        "names the worker: {report}"
    );
    // Within the default reap interval it is not yet a failure.
    let (code, report) = health(&env, &[]);
    assert_eq!(code, Some(0), "{report}");
}
