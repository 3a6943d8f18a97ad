//! The command line's surface as a new user meets it: help text, usage lines, refused flag
//! combinations and exit codes (docs/cli.md, "Exit codes").

mod common;

use std::process::Command;

use common::Env;

/// `spool` with no `--url`, in a scratch directory.
fn bare(args: &[&str]) -> std::process::Output {
    let dir = tempfile::tempdir().expect("temp dir");
    Command::new(env!("CARGO_BIN_EXE_spool"))
        .args(args)
        .env("SPOOL_URL", "postgres://app:s3cr3t@db.invalid/app")
        .env("SPOOL_LOG", "warn")
        .current_dir(dir.path())
        .output()
        .expect("spool runs")
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn help_never_prints_the_store_urls_password() {
    for args in [
        &["--help"][..],
        &["work", "--help"],
        &["retry", "--help"],
        &["bench", "--help"],
        &["status", "--help"],
    ] {
        let out = bare(args);
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        assert!(
            !text(&out).contains("s3cr3t"),
            "{args:?} shows the password"
        );
    }
}

#[test]
fn usage_lines_do_not_show_the_global_url_as_required() {
    let out = bare(&["retry"]);
    assert_eq!(out.status.code(), Some(2), "a usage error");
    let usage = text(&out);
    assert!(usage.contains("Usage: spool retry"), "{usage}");
    assert!(!usage.contains("--url <URL>"), "{usage}");
}

#[test]
fn bench_takes_the_workload_in_either_case() {
    for workload in ["W1", "w1"] {
        let out = bare(&["bench", "--workload", workload, "--jobs", "20", "--json"]);
        assert!(out.status.success(), "{workload}: {}", text(&out));
    }
}

#[test]
fn contradictory_worker_flags_are_usage_errors() {
    let env = Env::new();
    for flags in [
        &["--stop-when-empty", "--until-done"][..],
        &["--once", "--stop-when-empty"],
        &["--once", "--until-done"],
        &["--once", "--max-jobs", "5"],
        &["--memory", "0"],
        &["--sleep", "0"],
    ] {
        let mut args = vec!["work"];
        args.extend_from_slice(flags);
        let out = env.run(&args);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {}", text(&out));
    }
}

#[test]
fn at_takes_rfc3339_offsets_refuses_zoneless_times_and_never_runs_early() {
    let env = Env::new();
    // An offset: 09:00 at +02:00 is 07:00 UTC.
    let out = env.json(&[
        "dispatch",
        "noop",
        "--at",
        "2030-01-31T09:00:00+02:00",
        "--json",
    ]);
    let job = env.json(&["job", out["id"].as_str().unwrap(), "--json"]);
    let at = job["available_at"].as_str().unwrap();
    assert!(
        at.starts_with("2030-01-31T07:00:00.") && at.ends_with('Z'),
        "shown to the millisecond, never before the instant asked for: {at}"
    );
    assert!(at >= "2030-01-31T07:00:00.000Z", "{at}");
    // A time without a zone is refused, with the hint; like any bad argument, exit 2.
    let out = env.run(&["dispatch", "noop", "--at", "2030-01-31T09:00:00"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("no time zone"), "{}", text(&out));
    let out = env.run(&["dispatch", "noop", "--at", "tomorrow"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let out = env.run(&["dispatch", "noop", "--delay", "soon"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

#[test]
fn not_found_says_error_and_exits_1() {
    let env = Env::new();
    env.ok(&["migrate"]);
    for args in [
        &["job", "nope"][..],
        &["failed", "show", "nope"],
        &["forget", "nope"],
        &["retry", "nope"],
        &["batches", "show", "nope"],
        &["retry-batch", "nope"],
    ] {
        let out = env.run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("error: "), "{args:?}: {err}");
    }
    // A completed job without a kept result is still found, in the completed history.
    let id = env.ok(&["dispatch", "noop"]).trim().to_string();
    env.ok(&["work", "--until-done"]);
    let out = env.run(&["job", &id, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["state"], "completed", "{shown}");
}

#[test]
fn tables_survive_huge_and_hostile_values() {
    let env = Env::new();
    let long_queue = "q".repeat(70_000);
    let out = env.run(&["dispatch", "noop", "--queue", &long_queue]);
    // Either refused by the queue-name rule or shown: never a panic.
    assert!(matches!(out.status.code(), Some(0..=2)), "{}", text(&out));
    let message = format!("boom \u{1b}[31mred{}", "e".repeat(70_000));
    let payload = serde_json::json!({ "message": message }).to_string();
    env.ok(&["dispatch", "fail", "--tries", "1", "--payload", &payload]);
    env.ok(&["work", "--until-done"]);
    for args in [&["status"][..], &["jobs"], &["failed"]] {
        let out = env.run(args);
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains('\u{1b}'),
            "{args:?} prints a raw escape"
        );
    }
}

#[test]
fn status_shows_a_dash_for_the_oldest_ready_age_when_nothing_is_ready() {
    let env = Env::new();
    env.ok(&["dispatch", "noop", "--delay", "60"]);
    let status = env.ok(&["status"]);
    let header = status.lines().next().unwrap();
    let row = status.lines().nth(1).unwrap();
    let column = header.find("OLDEST READY").unwrap();
    assert_eq!(&row[column..column + 1], "-", "{status}");
}

#[test]
fn stdin_refuses_a_huge_line_without_reading_it_all() {
    let env = Env::new();
    let line = format!(
        r#"{{"job":"noop","payload":{{"x":"{}"}}}}"#,
        "a".repeat(20 << 20)
    );
    let mut child = env
        .cmd(&["dispatch", "--stdin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spool runs");
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        // Spool stops reading at the limit: the rest of the line meets a closed pipe.
        let _ = stdin.write_all(format!("{{\"job\":\"noop\"}}\n{line}\n").as_bytes());
    });
    let out = child.wait_with_output().expect("spool ends");
    writer.join().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2 is longer than 4 MiB"), "{err}");
    assert!(err.contains("nothing was enqueued"), "{err}");
    assert_eq!(env.queued(), 0);
}

#[test]
fn status_marks_a_killed_worker_silent_before_its_lease_ends() {
    let env = Env::new();
    env.ok(&["migrate"]);
    // Killed on drop too, so a failed assertion never leaves a worker running.
    struct Killed(std::process::Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut worker = Killed(env.spawn(&["work", "--lease", "4s"]));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while env.json(&["status", "--json"])["workers"]
        .as_array()
        .unwrap()
        .is_empty()
    {
        assert!(std::time::Instant::now() < deadline, "the worker registers");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    worker.0.kill().unwrap();
    worker.0.wait().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2300));
    let status = env.ok(&["status"]);
    assert!(status.contains("LAST SEEN"), "{status}");
    assert!(status.contains("silent"), "{status}");
    let json = env.json(&["status", "--json"]);
    let w = &json["workers"][0];
    assert_eq!(w["lease_ms"], 4000);
    assert!(w["last_seen_ms"].as_u64().unwrap() >= 2000, "{w}");
}

/// `spool jobs | head -1`: a reader that goes away ends a listing quietly, as Unix tools do,
/// never with a panic and its backtrace.
#[test]
fn a_closed_stdout_ends_a_listing_without_a_panic() {
    let env = Env::new();
    env.ok(&["dispatch", "noop", "--count", "50"]);
    let mut child = env
        .cmd(&["jobs", "--limit", "50"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spool starts");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("spool ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
}
