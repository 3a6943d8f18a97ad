//! `--http ADDR` on `spool work` and `spool supervise`: `GET /livez` answers while the process
//! runs, `GET /health` answers the checks of `spool health` with 200 or 503, and a worker's
//! `GET /metrics` its own counts.

mod common;

use std::{
    net::TcpListener,
    time::{Duration, Instant},
};

use common::{Env, free_port, http, signal};

/// `GET path` on the local `port`: the status code and the body.
fn get(port: u16, path: &str) -> (u16, String) {
    http(([127, 0, 0, 1], port).into(), "GET", path, &[])
}

#[test]
fn a_worker_serves_livez_and_health() {
    let env = Env::new();
    env.ok(&["migrate"]);
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut worker = env.spawn(&["work", "--queue", "mail", "--http", &addr]);
    let (status, body) = get(port, "/livez");
    assert_eq!((status, body.trim()), (200, "ok"));
    // Healthy once the worker registered (it serves `mail`).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = get(port, "/health");
        if status == 200 {
            let report: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(report["healthy"], true);
            break;
        }
        assert!(Instant::now() < deadline, "{status}: {body}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Ready jobs on a queue nobody serves: 503 with the failing check.
    env.ok(&["dispatch", "noop", "--queue", "other"]);
    let (status, body) = get(port, "/health");
    assert_eq!(status, 503, "{body}");
    let report: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["healthy"], false);
    assert!(body.contains("other"), "{body}");
    assert_eq!(get(port, "/nothing").0, 404);
    // Its own figures, under `spool_worker_*` names (the store-wide ones are the dashboard's).
    env.ok(&["dispatch", "noop", "--queue", "mail", "--count", "3"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = get(port, "/metrics");
        assert_eq!(status, 200);
        assert!(body.contains("spool_worker_concurrency 1"), "{body}");
        assert!(!body.contains("spool_jobs_enqueued_total"), "{body}");
        if body.contains("spool_worker_jobs_completed_total 3") {
            break;
        }
        assert!(Instant::now() < deadline, "{body}");
        std::thread::sleep(Duration::from_millis(100));
    }
    signal(&worker, "TERM");
    assert!(worker.wait().unwrap().success());
}

#[test]
fn a_taken_address_fails_with_the_cause() {
    let env = Env::new();
    env.ok(&["migrate"]);
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = env.run(&["work", "--http", &addr, "--once"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot listen on") && err.contains("--http"),
        "{err}"
    );
}
