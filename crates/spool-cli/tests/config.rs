//! `spool.toml`: found in the working directory or named by `--config`, read by every command;
//! its `url` comes after `--url` and `SPOOL_URL`; a key it does not know is refused with its line.

use std::{path::Path, process::Command};

fn spool(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_spool"));
    cmd.args(args)
        .env_remove("SPOOL_URL")
        .env("SPOOL_LOG", "warn")
        .current_dir(dir);
    cmd
}

fn run_ok(cmd: &mut Command) {
    let out = cmd.output().expect("spool runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_files_url_comes_after_the_flag_and_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("spool.toml"), "url = \"sqlite://from-file.db\"\n").unwrap();
    run_ok(&mut spool(d, &["dispatch", "noop"]));
    assert!(d.join("from-file.db").exists(), "the file's url is used");
    assert!(!d.join("spool.db").exists(), "not the default");

    run_ok(spool(d, &["dispatch", "noop"]).env("SPOOL_URL", "sqlite://from-env.db"));
    assert!(
        d.join("from-env.db").exists(),
        "SPOOL_URL wins over the file"
    );

    run_ok(
        spool(d, &["--url", "sqlite://from-flag.db", "dispatch", "noop"])
            .env("SPOOL_URL", "sqlite://from-env.db"),
    );
    assert!(d.join("from-flag.db").exists(), "--url wins over both");

    // A file named by --config, elsewhere.
    let other = tempfile::tempdir().unwrap();
    let named = other.path().join("jobs.toml");
    std::fs::write(&named, "url = \"sqlite://named.db\"\n").unwrap();
    run_ok(&mut spool(
        d,
        &["--config", named.to_str().unwrap(), "dispatch", "noop"],
    ));
    assert!(d.join("named.db").exists());
}

#[test]
fn a_bad_file_is_a_usage_error_naming_its_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cases = [
        (
            "url = \"sqlite://x.db\"\ncolour = \"red\"\n",
            "line 2",
            "colour",
        ),
        (
            "[[pool]]\nname = \"a\"\nqueues = [\"q\"]\nflavour = 1\n",
            "line 4",
            "flavour",
        ),
        ("log_format = \"xml\"\n", "line 1", "xml"),
        (
            "[[pool]]\nname = \"a\"\nqueues = [\"q\"]\nmin_processes = 3\nmax_processes = 2\n",
            "line 4",
            "min_processes",
        ),
        ("[[pool]]\nname = \"a\"\n", "line 1", "queues"),
        (
            "[[pool]]\nname = \"a\"\nqueues = [\"q\"]\nbalance = \"fair\"\n",
            "line 4",
            "balance",
        ),
        (
            "[[schedule]]\nname = \"n\"\ncron = \"every day\"\njob = \"noop\"\n",
            "line 3",
            "cron",
        ),
        (
            "[[schedule]]\nname = \"n\"\ncron = \"* * * * *\"\njob = \"noop\"\n\
             [[schedule]]\nname = \"n\"\ncron = \"* * * * *\"\njob = \"noop\"\n",
            "line 6",
            "used twice",
        ),
        (
            "[[pool]]\nname = \"a\"\nqueues = [\"q\"]\ntimeout = \"soon\"\n",
            "line 4",
            "timeout",
        ),
    ];
    for (text, line, key) in cases {
        std::fs::write(d.join("spool.toml"), text).unwrap();
        let out = spool(d, &["status"]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text}: {err}");
        assert!(err.contains("spool.toml"), "names the file: {err}");
        assert!(err.contains(line) && err.contains(key), "{text}: {err}");
    }
    let out = spool(d, &["--config", "missing.toml", "status"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml"));
}

#[test]
fn the_files_log_format_applies_unless_the_flag_or_environment_says_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("spool.toml"),
        "url = \"sqlite://j.db\"\nlog_format = \"json\"\n",
    )
    .unwrap();
    run_ok(&mut spool(d, &["dispatch", "noop"]));
    let out = spool(d, &["work", "--until-done", "--sleep", "50ms"])
        .env("SPOOL_LOG", "info")
        .output()
        .unwrap();
    let logs = String::from_utf8_lossy(&out.stderr);
    let first = logs.lines().next().unwrap_or_default();
    assert!(first.starts_with('{'), "JSON lines: {logs}");
    let out = spool(
        d,
        &[
            "--log-format",
            "text",
            "work",
            "--until-done",
            "--sleep",
            "50ms",
        ],
    )
    .env("SPOOL_LOG", "info")
    .output()
    .unwrap();
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(!logs.starts_with('{'), "the flag wins: {logs}");
}

#[test]
fn schedule_list_shows_each_entry_with_its_next_three_runs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("spool.toml"),
        r#"url = "sqlite://s.db"

[[schedule]]
name = "nightly-report"
cron = "0 3 * * *"
timezone = "Europe/Kyiv"
job = "shell"
payload = { cmd = "echo report" }
queue = "reports"

[[schedule]]
name = "every-minute"
cron = "* * * * *"
job = "noop"
"#,
    )
    .unwrap();
    let out = spool(d, &["schedule", "list", "--json"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let schedules = listed["schedules"].as_array().unwrap();
    assert_eq!(schedules.len(), 2);
    let nightly = &schedules[0];
    assert_eq!(nightly["name"], "nightly-report");
    assert_eq!(nightly["cron"], "0 3 * * *");
    assert_eq!(nightly["timezone"], "Europe/Kyiv");
    assert_eq!(nightly["job"], "shell");
    assert_eq!(nightly["queue"], "reports");
    let next: Vec<&str> = nightly["next"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(next.len(), 3);
    for at in &next {
        // 03:00 in Kyiv is 00:00 or 01:00 UTC (summer or winter time).
        assert!(
            at.ends_with("T00:00:00Z") || at.ends_with("T01:00:00Z"),
            "{at}"
        );
    }
    assert!(next.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(schedules[1]["queue"], "default");
    assert_eq!(schedules[1]["timezone"], "UTC");
}

#[test]
fn bad_schedules_are_refused_at_start_naming_the_entry() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let entry =
        |body: &str| format!("url = \"sqlite://b.db\"\n[[schedule]]\nname = \"rep\"\n{body}");
    let cases = [
        ("cron = \"61 * * * *\"\njob = \"noop\"\n", "invalid cron"),
        (
            "cron = \"* * * * *\"\njob = \"noop\"\ntimezone = \"Mars/Olympus\"\n",
            "unknown time zone",
        ),
        (
            "cron = \"* * * * *\"\njob = \"noop\"\nqueue = \"a,b\"\n",
            "queue",
        ),
    ];
    for (body, why) in cases {
        std::fs::write(d.join("spool.toml"), entry(body)).unwrap();
        let out = spool(d, &["status"]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{body}: {err}");
        assert!(
            err.contains("schedule `rep`") && err.contains(why),
            "{body}: {err}"
        );
    }
    // A job the worker does not know: refused when the worker starts.
    std::fs::write(
        d.join("spool.toml"),
        entry("cron = \"* * * * *\"\njob = \"nightly\"\n"),
    )
    .unwrap();
    let out = spool(d, &["work", "--until-done"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("schedule `rep`") && err.contains("`nightly`"),
        "{err}"
    );
}

/// A schedule of a job that is not encrypted needs no key: its ticks are pushed in the clear.
#[test]
fn a_schedule_of_a_plain_job_fires_without_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("spool.toml"),
        "url = \"sqlite://t.db\"\n\n[[schedule]]\nname = \"beat\"\ncron = \"* * * * * *\"\njob = \"noop\"\n",
    )
    .unwrap();
    run_ok(spool(d, &["work", "--sleep", "50ms", "--max-time", "2500ms"]).env_remove("SPOOL_KEY"));
    let out = spool(d, &["stats", "--json"]).output().unwrap();
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let noop = stats["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["name"] == "noop")
        .unwrap_or_else(|| panic!("the schedule ran noop: {stats}"))
        .clone();
    assert!(noop["completed"].as_u64().unwrap() >= 1, "{noop}");
    assert_eq!(noop["failed"], 0, "{noop}");
}

/// Two workers read the same file: each tick of the schedule is pushed once between them.
#[test]
fn a_schedule_from_the_file_fires_once_per_tick_across_two_workers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("spool.toml"),
        r#"url = "sqlite://t.db"

[[schedule]]
name = "tick"
cron = "* * * * * *"
job = "shell"
payload = { cmd = "echo $SPOOL_JOB_ID >> ticks.txt" }
"#,
    )
    .unwrap();
    let workers: Vec<_> = (0..2)
        .map(|_| {
            spool(d, &["work", "--allow", "shell", "--sleep", "50ms"])
                // `shell` payloads are sealed: the workers share a key.
                .env("SPOOL_KEY", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(4500));
    for mut w in workers {
        let _ = w.kill();
        let _ = w.wait();
    }
    let ticks = std::fs::read_to_string(d.join("ticks.txt")).unwrap_or_default();
    let ids: Vec<&str> = ticks.lines().collect();
    assert!(ids.len() >= 2, "the schedule fired: {ticks}");
    let mut unique = ids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "a tick ran twice: {ticks}");
    assert!(ids.iter().all(|id| id.starts_with("cron:tick:")), "{ticks}");
}
