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
            "pool `a`",
            "min_processes",
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
