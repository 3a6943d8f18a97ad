//! `spool supervise` with real worker processes: autoscaling under a burst, crashes, deploys,
//! graceful stops, the one-per-host lock, failed pools; and `spool install`. On SQLite, and on
//! PostgreSQL when it is reachable (`SPOOL_TEST_POSTGRES_URL`).

mod common;

use std::{
    io::Read,
    process::{Child, Stdio},
    time::{Duration, Instant},
};

use common::{Env, drop_schema, signal, stores};

/// Writes `spool.toml` in the env's directory (and creates the store, so the test can read
/// its status before the supervisor's first worker starts).
fn config(env: &Env, text: &str) -> String {
    env.ok(&["migrate"]);
    let path = env.dir.join("spool.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// A running supervisor; its stderr is read all along (a full pipe would stall it).
struct Sup {
    child: Child,
    err: std::thread::JoinHandle<String>,
}

fn supervise(env: &Env, config: &str) -> Sup {
    let mut child = env
        .cmd(&["supervise", "--config", config])
        .env("SPOOL_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spool supervise starts");
    let mut stderr = child.stderr.take().unwrap();
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    Sup { child, err }
}

/// Waits for the supervisor up to `limit`; its exit code and stderr.
fn finish(sup: Sup, limit: Duration) -> (Option<i32>, String) {
    let Sup { mut child, err } = sup;
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("still running after {limit:?}: {}", err.join().unwrap());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (status.code(), err.join().unwrap())
}

/// Stops the supervisor with SIGTERM, expecting exit 0.
fn stop(sup: Sup) -> String {
    signal(&sup.child, "TERM");
    let (code, err) = finish(sup, Duration::from_secs(40));
    assert_eq!(code, Some(0), "supervisor exit: {err}");
    err
}

fn status(env: &Env) -> serde_json::Value {
    env.json(&["status", "--json"])
}

/// The pids of the registered workers whose process is alive (a worker killed with -9 stays
/// registered until its lease runs out).
fn workers(status: &serde_json::Value) -> Vec<u64> {
    status["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["pid"].as_u64().unwrap())
        .filter(|pid| alive(*pid))
        .collect()
}

fn alive(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        // A zombie (state Z) has exited.
        .is_ok_and(|stat| {
            !stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
}

fn wait_until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ok() {
        assert!(started.elapsed() < limit, "{what}: not after {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn processed(env: &Env) -> u64 {
    status(env)["processed"].as_u64().unwrap()
}

const AUTO_POOL: &str = r#"
[supervisor]
cooldown = "300ms"
max_shift = 1

[[pool]]
name = "burst"
queues = ["default"]
concurrency = 2
min_processes = 1
max_processes = 4
balance = "auto"
grace = "5s"
"#;

#[test]
fn an_auto_pool_scales_up_under_a_burst_survives_kill_9_drains_and_returns_to_min() {
    for env in stores() {
        let config = config(&env, AUTO_POOL);
        let sup = supervise(&env, &config);
        wait_until("the first worker", Duration::from_secs(20), || {
            workers(&status(&env)).len() == 1
        });
        // 2,000 jobs of 15 ms at 2 per process: one process needs 15 s.
        let lines: String = (0..2000)
            .map(|_| "{\"job\":\"sleep\",\"payload\":{\"ms\":15}}\n")
            .collect();
        env.dispatch_lines(&[], &lines);
        let mut most = 0;
        let mut killed = 0;
        let started = Instant::now();
        loop {
            let s = status(&env);
            let pids = workers(&s);
            most = most.max(pids.len());
            // Two random workers die mid-burst; their jobs come back by the lease.
            if killed < 2 && pids.len() >= 3 {
                let pid = pids[fastrand::usize(..pids.len())];
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
                killed += 1;
            }
            if env.queued() == 0 {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "not drained: {s}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        assert_eq!(most, 4, "the pool scaled up to its max");
        assert!(killed >= 1, "a worker was killed mid-burst");
        let s = status(&env);
        assert_eq!(s["processed"].as_u64(), Some(2000), "{s}");
        assert_eq!(s["failed"].as_u64(), Some(0), "{s}");
        wait_until("back to min", Duration::from_secs(30), || {
            workers(&status(&env)).len() == 1
        });
        stop(sup);
        drop_schema(&env);
    }
}

#[test]
fn spool_restart_under_a_steady_stream_leaves_every_job_done_once() {
    for env in stores() {
        let config = config(
            &env,
            r#"
[[pool]]
name = "steady"
queues = ["default"]
concurrency = 5
min_processes = 2
max_processes = 2
balance = "off"
grace = "5s"
"#,
        );
        let sup = supervise(&env, &config);
        wait_until("two workers", Duration::from_secs(20), || {
            workers(&status(&env)).len() == 2
        });
        let before = workers(&status(&env));
        let mut sent = 0;
        for round in 0..30 {
            let lines: String = (0..20)
                .map(|_| "{\"job\":\"sleep\",\"payload\":{\"ms\":5}}\n")
                .collect();
            env.dispatch_lines(&[], &lines);
            sent += 20;
            if round == 10 {
                env.ok(&["restart"]);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        wait_until("the stream done", Duration::from_secs(60), || {
            env.queued() == 0
        });
        assert_eq!(processed(&env), sent, "every job done once");
        wait_until("a new generation", Duration::from_secs(20), || {
            let now = workers(&status(&env));
            now.len() == 2 && now.iter().all(|p| !before.contains(p))
        });
        stop(sup);
        drop_schema(&env);
    }
}

#[test]
fn sighup_and_a_changed_config_start_a_new_generation() {
    let env = Env::new();
    let text = "[[pool]]\nname = \"one\"\nqueues = [\"default\"]\nconcurrency = 1\nmin_processes = 1\nmax_processes = 1\nbalance = \"off\"\ngrace = \"2s\"\n";
    let path = config(&env, text);
    let sup = supervise(&env, &path);
    let one_worker = || {
        let mut pid = None;
        wait_until("one worker", Duration::from_secs(20), || {
            let w = workers(&status(&env));
            pid = w.first().copied();
            w.len() == 1
        });
        pid.unwrap()
    };
    let first = one_worker();
    signal(&sup.child, "HUP");
    wait_until("a new worker after SIGHUP", Duration::from_secs(20), || {
        let w = workers(&status(&env));
        w.len() == 1 && w[0] != first
    });
    let second = one_worker();
    // Two processes now: the pool grows, a new generation starts.
    std::fs::write(
        &path,
        text.replace("max_processes = 1", "max_processes = 2")
            .replace("min_processes = 1", "min_processes = 2"),
    )
    .unwrap();
    wait_until("two new workers", Duration::from_secs(20), || {
        let w = workers(&status(&env));
        w.len() == 2 && !w.contains(&second)
    });
    stop(sup);
}

/// A supervisor killed with -9 cannot stop its workers: each notices within a second that it
/// was reparented, finishes its running job and exits 0 (a supervisor started again would
/// otherwise run beside them).
#[test]
fn workers_of_a_killed_supervisor_finish_their_jobs_and_stop() {
    let env = Env::new();
    let config = config(
        &env,
        r#"
[[pool]]
name = "p"
queues = ["default"]
concurrency = 2
min_processes = 1
max_processes = 1
balance = "off"
"#,
    );
    let mut sup = supervise(&env, &config);
    env.dispatch_lines(&[], "{\"job\":\"sleep\",\"payload\":{\"ms\":1500}}\n");
    wait_until("the job running", Duration::from_secs(20), || {
        status(&env)["queues"][0]["reserved"].as_u64() == Some(1)
    });
    let pids = workers(&status(&env));
    assert_eq!(pids.len(), 1);
    signal(&sup.child, "KILL");
    sup.child.wait().unwrap();
    wait_until(
        "the orphaned worker to stop",
        Duration::from_secs(20),
        || !alive(pids[0]),
    );
    let s = status(&env);
    assert_eq!(
        s["processed"].as_u64(),
        Some(1),
        "its running job finished: {s}"
    );
    assert_eq!(env.queued(), 0);
}

#[test]
fn sigterm_lets_running_jobs_finish_and_exits_0() {
    let env = Env::new();
    let config = config(
        &env,
        r#"
[[pool]]
name = "slow"
queues = ["default"]
concurrency = 4
min_processes = 1
max_processes = 1
balance = "off"
grace = "20s"
"#,
    );
    let sup = supervise(&env, &config);
    let lines: String = (0..4)
        .map(|_| "{\"job\":\"sleep\",\"payload\":{\"ms\":1500}}\n")
        .collect();
    env.dispatch_lines(&[], &lines);
    wait_until("four jobs running", Duration::from_secs(20), || {
        status(&env)["queues"][0]["reserved"].as_u64() == Some(4)
    });
    stop(sup);
    let s = status(&env);
    assert_eq!(s["processed"].as_u64(), Some(4), "{s}");
    assert_eq!(env.queued(), 0);
    assert!(workers(&s).is_empty(), "{s}");
}

#[test]
fn a_second_supervisor_on_the_same_config_exits_13() {
    let env = Env::new();
    let config = config(
        &env,
        "[[pool]]\nname = \"one\"\nqueues = [\"default\"]\nconcurrency = 1\nmin_processes = 1\nmax_processes = 1\nbalance = \"off\"\n",
    );
    let first = supervise(&env, &config);
    wait_until("the first worker", Duration::from_secs(20), || {
        workers(&status(&env)).len() == 1
    });
    let second = supervise(&env, &config);
    let (code, err) = finish(second, Duration::from_secs(20));
    assert_eq!(code, Some(13), "{err}");
    assert!(err.contains("another `spool supervise`"), "{err}");
    stop(first);
}

#[test]
fn a_pool_whose_workers_cannot_start_fails_while_the_others_keep_working() {
    let env = Env::new();
    let config = config(
        &env,
        r#"
[[pool]]
name = "broken"
queues = ["other"]
concurrency = 1
min_processes = 1
max_processes = 1
balance = "off"
allow = ["telnet"]

[[pool]]
name = "good"
queues = ["default"]
concurrency = 2
min_processes = 1
max_processes = 1
balance = "off"
"#,
    );
    let sup = supervise(&env, &config);
    let lines: String = (0..20).map(|_| "{\"job\":\"noop\"}\n").collect();
    env.dispatch_lines(&[], &lines);
    wait_until("the good pool's jobs", Duration::from_secs(30), || {
        processed(&env) == 20
    });
    // Five crashes at start, 1 + 2 + 4 + 8 s apart.
    std::thread::sleep(Duration::from_secs(17));
    // `status` shows the failed pool with its reason, the good one running (registrations
    // are renewed every 5 s).
    wait_until("the failed pool in status", Duration::from_secs(15), || {
        status(&env)["supervisors"][0]["pools"][0]["state"] == "failed"
    });
    let pools = status(&env)["supervisors"][0]["pools"].clone();
    assert_eq!(pools[0]["name"], "broken", "{pools}");
    assert!(
        pools[0]["error"].as_str().unwrap().contains("telnet"),
        "{pools}"
    );
    assert_eq!(pools[1]["state"], "running", "{pools}");
    // `health` fails its pools check, naming the pool and why.
    let out = env.run(&["health", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let check = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "pools")
        .cloned()
        .unwrap();
    assert_eq!(check["ok"], false, "{report}");
    assert!(
        check["detail"].as_str().unwrap().contains("broken"),
        "{report}"
    );
    let (err_pool_alive, err) = {
        let alive = workers(&status(&env)).len();
        (alive, stop(sup))
    };
    assert_eq!(err_pool_alive, 1, "the good pool still runs");
    assert!(err.contains("pool failed"), "{err}");
    assert!(
        err.contains("telnet"),
        "the reason names the bad entry: {err}"
    );
}

#[test]
fn install_systemd_prints_a_notify_unit_with_timeouts_above_the_grace() {
    let env = Env::new();
    let config = config(
        &env,
        "[[pool]]\nname = \"a\"\nqueues = [\"default\"]\nconcurrency = 1\nmin_processes = 1\nmax_processes = 2\nbalance = \"off\"\ngrace = \"40s\"\n\n[[pool]]\nname = \"b\"\nqueues = [\"b\"]\nconcurrency = 1\nmin_processes = 1\nmax_processes = 1\nbalance = \"off\"\n",
    );
    let unit = env.ok(&["install", "systemd", "--config", &config, "--user", "jobs"]);
    let value = |key: &str| -> String {
        unit.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("no {key} in\n{unit}"))
            .to_string()
    };
    assert_eq!(value("Type"), "notify");
    assert_eq!(value("NotifyAccess"), "main");
    assert_eq!(value("KillMode"), "mixed");
    assert_eq!(value("Restart"), "always");
    assert_eq!(value("User"), "jobs");
    assert!(value("WatchdogSec").parse::<u64>().unwrap() > 0);
    let stop: u64 = value("TimeoutStopSec").parse().unwrap();
    assert!(stop >= 45, "the largest grace (40 s) + 5 s: {stop}");
    let exec = value("ExecStart");
    assert!(exec.starts_with('/'), "{exec}");
    assert!(exec.ends_with(" supervise"), "{exec}");
    assert!(exec.contains(&format!("--config {config}")), "{exec}");
    assert_eq!(value("ExecReload"), "/bin/kill -HUP $MAINPID");

    let section = env.ok(&["install", "supervisor", "--config", &config]);
    assert!(section.starts_with("[program:spool]"), "{section}");
    for line in [
        "autorestart=true",
        "stopasgroup=true",
        "killasgroup=true",
        "stopsignal=TERM",
    ] {
        assert!(section.lines().any(|l| l == line), "{line} in\n{section}");
    }
    let wait: u64 = section
        .lines()
        .find_map(|l| l.strip_prefix("stopwaitsecs="))
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait >= 40, "{section}");
}
