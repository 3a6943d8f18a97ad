//! `spool dashboard` as people use it: in headless Chromium (Debian's, driven by
//! playwright-core: `tests/browser/dashboard.mjs`) over a store with jobs in every state, and
//! with plain HTTP requests for its token, read-only mode and bind rules.

mod common;

use std::{
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command},
    time::{Duration, Instant},
};

use common::{Env, free_port, http};

/// Starts `spool dashboard` on a free port and waits until it answers.
fn start(env: &Env, extra: &[&str], token: Option<&str>) -> (Child, SocketAddr) {
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let bind = addr.to_string();
    let mut args = vec!["dashboard", "--bind", bind.as_str()];
    args.extend(extra);
    let mut cmd = env.cmd(&args);
    if let Some(token) = token {
        cmd.env("SPOOL_DASHBOARD_TOKEN", token);
    }
    let child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "the dashboard did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, addr)
}

fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// The periodic job the seeded worker runs.
const SCHEDULE: &str = "hourly-digest";

/// A store with jobs in every state: completed and failed ones on `work` (some in a
/// batch, one tagged `tenant:7`), pending and delayed ones on `mail` (one tagged `tenant:7`),
/// one running on `slow` (held by the returned worker process, which also runs the schedule
/// [`SCHEDULE`]).
fn seed(env: &Env) -> Child {
    let mut lines = String::new();
    for _ in 0..5 {
        lines.push_str("{\"job\":\"noop\",\"queue\":\"work\"}\n");
    }
    lines.push_str("{\"job\":\"sleep\",\"queue\":\"work\",\"payload\":{\"ms\":30}}\n");
    lines.push_str("{\"job\":\"fail\",\"queue\":\"work\",\"tries\":1}\n");
    lines.push_str("{\"job\":\"noop\",\"queue\":\"work\",\"tags\":[\"tenant:7\"]}\n");
    env.dispatch_lines(&[], &lines);
    env.dispatch_lines(
        &["--batch", "nightly"],
        "{\"job\":\"noop\",\"queue\":\"work\"}\n{\"job\":\"noop\",\"queue\":\"work\"}\n",
    );
    env.ok(&["work", "--queue", "work", "--until-done"]);
    env.ok(&["dispatch", "noop", "--queue", "mail", "--count", "3"]);
    env.ok(&["dispatch", "noop", "--queue", "mail", "--tag", "tenant:7"]);
    env.ok(&["dispatch", "noop", "--queue", "mail", "--delay", "1h"]);
    env.ok(&[
        "dispatch",
        "sleep",
        "--queue",
        "slow",
        "--payload",
        "{\"ms\":600000}",
    ]);
    // The worker also runs a periodic job: the schedules page lists what it publishes.
    std::fs::write(
        env.dir.join("spool.toml"),
        format!(
            "[[schedule]]\nname = \"{SCHEDULE}\"\ncron = \"0 * * * *\"\njob = \"noop\"\nqueue = \"mail\"\n"
        ),
    )
    .unwrap();
    let worker = env.spawn(&["work", "--queue", "slow"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = env.json(&["status", "--json"]);
        let held = status["queues"]
            .as_array()
            .unwrap()
            .iter()
            .any(|q| q["name"] == "slow" && q["reserved"] == 1);
        if held {
            break;
        }
        assert!(Instant::now() < deadline, "the slow job never started");
        std::thread::sleep(Duration::from_millis(100));
    }
    worker
}

/// What the browser test needs, or why it cannot run here.
fn browser_tools() -> Result<PathBuf, String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    if !Path::new("/usr/bin/chromium").exists() {
        return Err("Debian's chromium is not installed (apt-get install chromium)".into());
    }
    if Command::new("node").arg("--version").output().is_err() {
        return Err("node is not installed".into());
    }
    if !dir.join("node_modules/playwright-core").exists() {
        return Err(format!(
            "playwright-core is not installed: run `npm ci` in {}",
            dir.display()
        ));
    }
    Ok(dir)
}

#[test]
fn the_dashboard_in_a_real_browser_matches_stats_retries_and_pauses() {
    let dir = match browser_tools() {
        Ok(dir) => dir,
        Err(why) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("the browser test cannot run under CI: {why}")
        }
        Err(why) => {
            eprintln!("SKIPPED: the dashboard browser test: {why}");
            return;
        }
    };
    let env = Env::new();
    let worker = seed(&env);
    let failed = env.json(&["failed", "--json"]);
    let failed_id = failed["failed"][0]["id"].as_str().unwrap().to_string();
    let tagged = |state: &str| {
        let page = env.json(&["jobs", "--state", state, "--tag", "tenant:7", "--json"]);
        let jobs = page["jobs"].as_array().unwrap().clone();
        assert_eq!(jobs.len(), 1, "one {state} job tagged tenant:7: {page}");
        jobs[0]["id"].as_str().unwrap().to_string()
    };
    let (completed_id, pending_id) = (tagged("completed"), tagged("pending"));
    let stats = env.ok(&["stats", "--json"]);
    let stats_file = env.dir.join("stats.json");
    std::fs::write(&stats_file, stats).unwrap();
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/dashboard-screenshots");

    let (dashboard, addr) = start(&env, &[], None);
    let run = Command::new("node")
        .arg(dir.join("dashboard.mjs"))
        .env("DASHBOARD_URL", format!("http://{addr}/"))
        .env("STATS_FILE", &stats_file)
        .env("FAILED_ID", &failed_id)
        .env("PAUSE_QUEUE", "mail")
        .env("TAG", "tenant:7")
        .env("COMPLETED_ID", &completed_id)
        .env("PENDING_TAGGED_ID", &pending_id)
        .env("SCHEDULE", SCHEDULE)
        .env("SHOT_DIR", &shots)
        .output()
        .unwrap();
    stop(dashboard);
    stop(worker);
    assert!(
        run.status.success(),
        "the browser test failed:\n{}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    // What the browser did reached the store.
    let status = env.json(&["status", "--json"]);
    let mail = status["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "mail")
        .unwrap()
        .clone();
    assert_eq!(mail["paused"], true);
    let job = env.json(&["job", &failed_id, "--json"]);
    assert_eq!(job["state"], "pending", "the retried job is queued again");
    assert!(shots.join("overview.png").exists());
}

#[test]
fn a_token_guards_every_request_and_read_only_refuses_actions() {
    let env = Env::new();
    env.ok(&["dispatch", "noop", "--queue", "mail"]);
    let (dashboard, addr) = start(&env, &["--read-only"], Some("s3cret"));
    assert_eq!(
        http(addr, "GET", "/livez", &[]).0,
        200,
        "probes need no token"
    );
    for path in ["/api/overview", "/metrics", "/health", "/api/queues"] {
        assert_eq!(
            http(addr, "GET", path, &[]).0,
            401,
            "{path} without the token"
        );
        let wrong = http(addr, "GET", path, &["Authorization: Bearer nope"]);
        assert_eq!(wrong.0, 401, "{path} with a wrong token");
    }
    let (status, page) = http(addr, "GET", "/", &[]);
    assert_eq!(status, 401);
    assert!(page.contains("name=\"token\""), "the login form: {page}");
    let auth = "Authorization: Bearer s3cret";
    let (status, body) = http(addr, "GET", "/api/queues", &[auth]);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"mail\""));
    let (status, _) = http(addr, "GET", "/", &["Cookie: spool_token=s3cret"]);
    assert_eq!(status, 200, "the login cookie works");
    let pause = "/api/queues/mail/pause";
    let (status, body) = http(addr, "POST", pause, &[auth, "X-Spool-Action: 1"]);
    assert_eq!(status, 403, "read-only: {body}");
    assert!(body.contains("read-only"));
    stop(dashboard);

    let (dashboard, addr) = start(&env, &[], Some("s3cret"));
    let (status, body) = http(addr, "POST", pause, &[auth]);
    assert_eq!(status, 403, "an action without its header: {body}");
    let (status, body) = http(addr, "POST", pause, &[auth, "X-Spool-Action: 1"]);
    assert_eq!(status, 200, "{body}");
    let (_, metrics) = http(addr, "GET", "/metrics", &[auth]);
    assert!(
        metrics.contains("spool_queue_paused{queue=\"mail\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("spool_jobs_enqueued_total{queue=\"mail\",job=\"noop\"} 1"));
    stop(dashboard);
}

#[test]
fn a_bind_beyond_loopback_needs_a_token_and_the_config_section_is_checked() {
    let env = Env::new();
    env.ok(&["migrate"]);
    let out = env.run(&["dashboard", "--bind", "0.0.0.0:0"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("without a token") && err.contains("SPOOL_DASHBOARD_TOKEN"),
        "{err}"
    );

    std::fs::write(
        env.dir.join("spool.toml"),
        "[dashboard]\nbind = \"nowhere\"\n",
    )
    .unwrap();
    let err = String::from_utf8_lossy(&env.run(&["dashboard"]).stderr).to_string();
    assert!(
        err.contains("line 2") && err.contains("not an address"),
        "{err}"
    );
    std::fs::write(env.dir.join("spool.toml"), "[dashboard]\nreadonly = true\n").unwrap();
    let err = String::from_utf8_lossy(&env.run(&["dashboard"]).stderr).to_string();
    assert!(err.contains("readonly"), "{err}");
    std::fs::write(env.dir.join("token"), "\n").unwrap();
    std::fs::write(
        env.dir.join("spool.toml"),
        "[dashboard]\ntoken_file = \"token\"\n",
    )
    .unwrap();
    let err = String::from_utf8_lossy(&env.run(&["dashboard"]).stderr).to_string();
    assert!(err.contains("is empty"), "{err}");
}
