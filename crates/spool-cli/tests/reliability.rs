//! Crash and shutdown behaviour of real worker processes: kill -9 loses nothing, SIGTERM
//! finishes or hands back. Jobs are `shell` jobs appending their number to a file, so every
//! run is counted across processes.

mod common;

use std::{
    collections::HashMap,
    path::Path,
    time::{Duration, Instant},
};

use common::{Env, signal};

fn dispatch_numbered(env: &Env, n: usize, cmd: &str) {
    let runs = env.dir.join("runs");
    let lines: String = (0..n)
        .map(|i| {
            let cmd = cmd
                .replace("{i}", &i.to_string())
                .replace("{runs}", &runs.display().to_string());
            format!(
                "{}\n",
                serde_json::json!({"job": "shell", "payload": {"cmd": cmd}, "tries": 1})
            )
        })
        .collect();
    let out = env.with_stdin(&["dispatch", "--stdin"], &lines);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// How often each job number ran.
fn run_counts(dir: &Path) -> HashMap<usize, usize> {
    let text = std::fs::read_to_string(dir.join("runs")).unwrap_or_default();
    let mut counts = HashMap::new();
    for line in text.lines() {
        *counts
            .entry(line.trim().parse::<usize>().expect("a job number"))
            .or_default() += 1;
    }
    counts
}

fn wait_for_runs(dir: &Path, at_least: usize, limit: Duration) {
    let started = Instant::now();
    while run_counts(dir).values().sum::<usize>() < at_least {
        assert!(
            started.elapsed() < limit,
            "fewer than {at_least} runs after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn kill_9_mid_run_loses_nothing_and_reruns_only_what_was_in_flight() {
    const JOBS: usize = 2000;
    const CONCURRENCY: usize = 25;
    let env = Env::new();
    dispatch_numbered(&env, JOBS, "sleep 0.02; echo {i} >> {runs}");
    let c = CONCURRENCY.to_string();
    let mut first = env.spawn(&[
        "work",
        "--allow",
        "shell",
        "--concurrency",
        &c,
        "--lease",
        "1s",
    ]);
    wait_for_runs(&env.dir, 300, Duration::from_secs(60));
    signal(&first, "KILL");
    first.wait().unwrap();

    let second = env.run(&[
        "work",
        "--allow",
        "shell",
        "--concurrency",
        &c,
        "--lease",
        "1s",
        "--until-done",
        "--sleep",
        "100ms",
    ]);
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );

    let counts = run_counts(&env.dir);
    let missing: Vec<usize> = (0..JOBS).filter(|i| !counts.contains_key(i)).collect();
    assert!(missing.is_empty(), "jobs never ran: {missing:?}");
    let reruns: usize = counts.values().map(|n| n - 1).sum();
    eprintln!("re-runs after kill -9: {reruns}");
    assert!(
        reruns <= 2 * CONCURRENCY,
        "{reruns} re-runs: more than the jobs in flight at the kill"
    );
    let status = env.json(&["status", "--json"]);
    assert_eq!(
        status["processed"].as_u64(),
        Some(JOBS as u64),
        "each job completed exactly once in the store"
    );
    assert_eq!(status["failed"].as_u64(), Some(0));
    assert_eq!(env.queued(), 0);
}

#[test]
fn sigterm_lets_running_jobs_finish_and_starts_no_more() {
    let env = Env::new();
    dispatch_numbered(&env, 40, "sleep 0.4; echo {i} >> {runs}");
    let mut worker = env.spawn(&[
        "work",
        "--allow",
        "shell",
        "--concurrency",
        "10",
        "--grace",
        "20s",
    ]);
    wait_for_runs(&env.dir, 5, Duration::from_secs(30));
    signal(&worker, "TERM");
    let stopped = Instant::now();
    let status = worker.wait().unwrap();
    assert!(status.success(), "exit {status:?}");
    assert!(
        stopped.elapsed() < Duration::from_secs(5),
        "waited {:?}",
        stopped.elapsed()
    );
    let done = run_counts(&env.dir);
    assert!(done.values().all(|n| *n == 1));
    let left = env.queued() as usize;
    assert_eq!(
        done.len() + left,
        40,
        "every job either ran or is still queued"
    );
    let state = env.json(&["status", "--json"]);
    assert!(
        state["queues"][0]["reserved"].as_u64() == Some(0)
            && state["workers"].as_array().unwrap().is_empty()
    );

    env.ok(&[
        "work",
        "--allow",
        "shell",
        "--concurrency",
        "10",
        "--until-done",
        "--sleep",
        "100ms",
    ]);
    let all = run_counts(&env.dir);
    assert_eq!(all.len(), 40);
    assert!(
        all.values().all(|n| *n == 1),
        "a graceful stop never causes a re-run"
    );
}

#[test]
fn sigterm_hands_back_jobs_that_outlast_the_grace_period() {
    let env = Env::new();
    dispatch_numbered(&env, 3, "sleep 5; echo {i} >> {runs}");
    let mut worker = env.spawn(&["work", "--allow", "shell", "--grace", "300ms"]);
    std::thread::sleep(Duration::from_millis(700));
    signal(&worker, "TERM");
    let stopped = Instant::now();
    assert!(worker.wait().unwrap().success());
    assert!(
        stopped.elapsed() < Duration::from_secs(3),
        "waited {:?}",
        stopped.elapsed()
    );
    let jobs = env.json(&["jobs", "--json"]);
    let jobs = jobs["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 3, "handed back, not lost");
    for job in jobs {
        assert_eq!(
            (job["state"].as_str(), job["attempts"].as_u64()),
            (Some("pending"), Some(0))
        );
    }
}
