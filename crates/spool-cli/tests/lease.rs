//! D-1 through the real binary: a worker that cannot renew its lease stops with its own exit
//! code instead of running on while the reaper hands its jobs to another worker.

mod common;

use std::{
    io::Read,
    time::{Duration, Instant},
};

use common::{Env, signal};

/// A worker paused for longer than its lease (SIGSTOP, as a frozen VM or a debugger does)
/// finds on waking that it lost the lease: it exits 13 and leaves its job queued for the reaper,
/// never completing it.
#[test]
fn a_worker_that_lost_its_lease_exits_13_and_leaves_its_job_queued() {
    let env = Env::new();
    env.ok(&["dispatch", "sleep", "--payload", r#"{"ms":3000}"#]);
    let mut worker = env
        .cmd(&["work", "--lease", "1s", "--sleep", "100ms"])
        .env("SPOOL_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spool starts");
    let started = Instant::now();
    while env.json(&["status", "--json"])["queues"][0]["reserved"].as_u64() != Some(1) {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "never reserved"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    signal(&worker, "STOP");
    std::thread::sleep(Duration::from_millis(1500));
    signal(&worker, "CONT");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = worker.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(10) {
            let _ = worker.kill();
            panic!("the worker went on after losing its lease");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    worker
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(13), "{stderr}");
    assert!(stderr.contains("lease lost"), "{stderr}");
    assert_eq!(env.queued(), 1, "the job was neither completed nor dropped");
    assert_eq!(env.json(&["status", "--json"])["processed"], 0);
}
