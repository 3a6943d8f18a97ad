//! `spool monitor` as a person uses it: the live view under tmux (send-keys, capture-pane),
//! and `--once` for scripts.

mod common;

use std::{
    process::Command,
    time::{Duration, Instant},
};

use common::Env;

fn tmux(args: &[&str]) -> std::process::Output {
    Command::new("tmux").args(args).output().expect("tmux runs")
}

fn screen(session: &str) -> String {
    String::from_utf8_lossy(&tmux(&["capture-pane", "-p", "-t", session]).stdout).to_string()
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn seed(env: &Env) {
    env.ok(&["dispatch", "noop", "--queue", "alpha", "--count", "2"]);
    env.ok(&["dispatch", "noop", "--queue", "beta", "--count", "3"]);
    env.ok(&["dispatch", "fail", "--queue", "beta", "--tries", "1"]);
    env.ok(&["work", "--queue", "beta", "--until-done"]);
    env.ok(&["dispatch", "noop", "--queue", "beta"]);
}

#[test]
fn once_prints_the_queues_workers_and_failures_as_text() {
    let env = Env::new();
    seed(&env);
    let out = env.ok(&["monitor", "--once"]);
    let header = out.lines().next().unwrap();
    for column in [
        "QUEUE", "PENDING", "PAUSED", "PER MIN", "WAIT p95", "RUN p95", "FAILED",
    ] {
        assert!(header.contains(column), "{header}");
    }
    let beta = out
        .lines()
        .find(|l| l.starts_with("beta"))
        .expect("beta's row");
    let cells: Vec<&str> = beta.split_whitespace().collect();
    assert_eq!(cells[1], "1", "one pending: {beta}");
    assert!(beta.contains('█'), "a throughput sparkline: {beta}");
    assert!(out.contains("1 failed records"), "{out}");
    assert!(out.contains("no live workers"), "{out}");
    let only = env.ok(&["monitor", "--once", "--queue", "alpha"]);
    assert!(only.contains("alpha") && !only.contains("beta"), "{only}");
}

#[test]
fn the_live_view_shows_the_queues_pauses_with_p_and_quits_with_q() {
    if Command::new("tmux").arg("-V").output().is_err() {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "tmux is needed under CI"
        );
        eprintln!("SKIPPED: the monitor's tmux test: tmux is not installed");
        return;
    }
    let env = Env::new();
    seed(&env);
    let session = format!("spool-monitor-{}", std::process::id());
    let command = format!(
        "'{}' --url '{}' monitor --refresh 200ms",
        env!("CARGO_BIN_EXE_spool"),
        env.url
    );
    let started = tmux(&[
        "new-session",
        "-d",
        "-s",
        &session,
        "-x",
        "160",
        "-y",
        "40",
        "-c",
        env.dir.to_str().unwrap(),
        &command,
    ]);
    assert!(
        started.status.success(),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );
    wait_for("the queues on screen", || {
        let s = screen(&session);
        s.contains("alpha") && s.contains("beta") && s.contains("Recent failures")
    });
    // The first queue (alpha) is selected: `p` pauses it.
    tmux(&["send-keys", "-t", &session, "p"]);
    wait_for("alpha paused", || {
        let status = env.json(&["status", "--json"]);
        status["queues"]
            .as_array()
            .unwrap()
            .iter()
            .any(|q| q["name"] == "alpha" && q["paused"] == true)
    });
    wait_for("the pause on screen", || {
        screen(&session)
            .lines()
            .any(|l| l.contains("alpha") && l.contains("paused"))
    });
    tmux(&["send-keys", "-t", &session, "q"]);
    wait_for("the monitor to quit", || {
        !tmux(&["has-session", "-t", &session]).status.success()
    });
}
