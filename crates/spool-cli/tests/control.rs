//! `spool pause`/`continue`, `quiet` and `terminate` with real worker and supervisor
//! processes, on SQLite and on PostgreSQL when it is reachable: what every worker honours
//! within a second (the tests wait a little longer, never assert a time).

mod common;

use std::{
    process::Child,
    time::{Duration, Instant},
};

use common::{Env, drop_schema, stores};

/// Waits up to `limit` for `done`, polling.
fn wait_for(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A queue's row in `status --json`.
fn queue(env: &Env, name: &str) -> serde_json::Value {
    let status = env.json(&["status", "--json"]);
    status["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == name)
        .cloned()
        .unwrap_or(serde_json::Value::Null)
}

fn waiting(env: &Env, name: &str) -> u64 {
    let q = queue(env, name);
    q["pending"].as_u64().unwrap_or(0) + q["reserved"].as_u64().unwrap_or(0)
}

fn live_workers(env: &Env) -> usize {
    env.json(&["status", "--json"])["workers"]
        .as_array()
        .unwrap()
        .len()
}

fn dispatch(env: &Env, queue: &str, n: usize) {
    let lines: String = (0..n)
        .map(|_| format!("{{\"job\":\"noop\",\"queue\":\"{queue}\"}}\n"))
        .collect();
    let out = env.with_stdin(&["dispatch", "--stdin"], &lines);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn exits_0(child: &mut Child, within: Duration, what: &str) {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert_eq!(status.code(), Some(0), "{what} exited with {status}");
            return;
        }
        assert!(Instant::now() < deadline, "{what} did not exit");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn pause_stops_a_queue_on_two_workers_continue_resumes_it_and_terminate_stops_them() {
    for env in stores() {
        env.ok(&["migrate"]);
        let args = ["work", "--queue", "mail,other", "--sleep", "100ms"];
        let mut workers = [env.spawn(&args), env.spawn(&args)];
        wait_for(Duration::from_secs(20), "two workers", || {
            live_workers(&env) == 2
        });

        let out = env.ok(&["pause", "mail"]);
        assert!(out.contains("paused `mail`"), "{out}");
        assert!(env.ok(&["pause", "mail"]).contains("already paused"));
        // Honoured within a second; give loaded machines more.
        std::thread::sleep(Duration::from_millis(3000));
        dispatch(&env, "mail", 20);
        dispatch(&env, "other", 5);
        wait_for(Duration::from_secs(20), "`other` to drain", || {
            waiting(&env, "other") == 0
        });
        std::thread::sleep(Duration::from_millis(500));
        let mail = queue(&env, "mail");
        assert_eq!(
            mail["pending"], 20,
            "no worker took from the paused queue: {mail}"
        );
        assert_eq!(mail["paused"], true);
        assert_ne!(queue(&env, "other")["paused"], true);
        let table = env.ok(&["status"]);
        let row = table.lines().find(|l| l.starts_with("mail")).unwrap();
        assert!(row.contains("paused"), "{table}");
        // Health does not count a paused queue as unserved or late.
        let out = env.run(&["health", "--json", "--max-wait", "1ms"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );

        assert!(env.ok(&["continue", "mail"]).contains("continued `mail`"));
        wait_for(Duration::from_secs(20), "`mail` to drain", || {
            waiting(&env, "mail") == 0
        });
        assert_ne!(queue(&env, "mail")["paused"], true);

        // A paused queue is listed even when empty.
        env.ok(&["pause", "empty"]);
        assert_eq!(queue(&env, "empty")["paused"], true);

        env.ok(&["terminate"]);
        for (n, worker) in workers.iter_mut().enumerate() {
            exits_0(worker, Duration::from_secs(20), &format!("worker {n}"));
        }
        drop_schema(&env);
    }
}

#[test]
fn quiet_workers_take_nothing_new_until_restarted() {
    for env in stores() {
        env.ok(&["migrate"]);
        let mut quiet = env.spawn(&["work", "--sleep", "100ms"]);
        wait_for(Duration::from_secs(20), "the worker", || {
            live_workers(&env) == 1
        });
        let out = env.run(&["quiet", "no-such-worker"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr).contains("no live worker `no-such-worker`"));

        env.ok(&["quiet"]);
        std::thread::sleep(Duration::from_millis(3000));
        // Started after the quiet: not quiet.
        dispatch(&env, "default", 3);
        std::thread::sleep(Duration::from_millis(1500));
        assert_eq!(waiting(&env, "default"), 3, "a quiet worker took a job");
        assert!(quiet.try_wait().unwrap().is_none(), "quiet is not a stop");

        let mut fresh = env.spawn(&["work", "--sleep", "100ms"]);
        wait_for(Duration::from_secs(20), "the new worker to drain", || {
            waiting(&env, "default") == 0
        });
        // By id too.
        let status = env.json(&["status", "--json"]);
        let id = status["workers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["id"].as_str().unwrap().to_string())
            .find(|id| id.contains(&fresh.id().to_string()))
            .expect("the new worker's id names its pid");
        env.ok(&["quiet", &id]);
        std::thread::sleep(Duration::from_millis(3000));
        dispatch(&env, "default", 2);
        std::thread::sleep(Duration::from_millis(1500));
        assert_eq!(waiting(&env, "default"), 2, "the named worker went quiet");

        env.ok(&["restart"]);
        exits_0(&mut quiet, Duration::from_secs(20), "the quiet worker");
        exits_0(&mut fresh, Duration::from_secs(20), "the named worker");
        drop_schema(&env);
    }
}

/// The first supervisor in `status --json`, if any.
fn supervisor(env: &Env) -> serde_json::Value {
    env.json(&["status", "--json"])["supervisors"][0].clone()
}

#[test]
fn a_supervisor_shows_in_status_and_terminate_stops_it_and_its_workers() {
    let env = Env::new();
    env.ok(&["migrate"]);
    let config = env.dir.join("spool.toml");
    std::fs::write(
        &config,
        "[[pool]]\nname = \"p\"\nqueues = [\"default\"]\nmin_processes = 1\nmax_processes = 1\nbalance = \"off\"\n",
    )
    .unwrap();
    let mut process = env
        .cmd(&["supervise", "--config", &config.display().to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for(Duration::from_secs(30), "the pool's worker", || {
        live_workers(&env) == 1
    });
    // Registered with its pools (renewed every 5 s).
    wait_for(
        Duration::from_secs(20),
        "the supervisor's registration",
        || supervisor(&env)["pools"][0]["processes"] == 1,
    );
    let sup = supervisor(&env);
    assert_eq!(sup["pid"], process.id(), "{sup}");
    assert!(
        sup["id"]
            .as_str()
            .unwrap()
            .contains(&process.id().to_string())
    );
    let pool = &sup["pools"][0];
    assert_eq!(pool["name"], "p");
    assert_eq!(pool["queues"], serde_json::json!(["default"]));
    assert_eq!(
        (pool["min"].as_u64(), pool["max"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(pool["balance"], "off");
    assert_eq!(pool["state"], "running");
    assert_eq!(pool["error"], serde_json::Value::Null);
    let table = env.ok(&["status"]);
    assert!(
        table.contains("supervisors:") && table.contains("running"),
        "{table}"
    );

    env.ok(&["pause", "default"]);
    wait_for(Duration::from_secs(20), "the pool to show paused", || {
        supervisor(&env)["pools"][0]["state"] == "paused"
    });

    env.ok(&["terminate"]);
    exits_0(&mut process, Duration::from_secs(30), "the supervisor");
    wait_for(Duration::from_secs(10), "no live worker", || {
        live_workers(&env) == 0
    });
    assert_eq!(supervisor(&env), serde_json::Value::Null, "deregistered");
}

/// `status` flags a worker whose lease expired while it still holds jobs (no reaper ran yet),
/// and a job held past its timeout.
#[test]
fn status_flags_expired_workers_and_jobs_past_their_timeout() {
    let env = Env::new();
    env.ok(&["migrate"]);
    env.ok(&[
        "dispatch",
        "sleep",
        "--payload",
        r#"{"ms":60000}"#,
        "--timeout",
        "1",
    ]);
    let mut worker = env.spawn(&["work", "--lease", "2s", "--sleep", "50ms"]);
    wait_for(Duration::from_secs(20), "the job to be reserved", || {
        queue(&env, "default")["reserved"] == 1
    });
    // Killed mid-job: its lease runs out, and no other worker reaps.
    common::signal(&worker, "KILL");
    worker.wait().unwrap();
    wait_for(Duration::from_secs(20), "both flags", || {
        let stuck = env.json(&["status", "--json"])["stuck"].clone();
        stuck["expired_workers"][0]["jobs"] == 1 && stuck["past_timeout"][0]["timeout_ms"] == 1000
    });
    let stuck = env.json(&["status", "--json"])["stuck"].clone();
    assert_eq!(stuck["past_timeout"][0]["job"], "sleep", "{stuck}");
    assert!(stuck["past_timeout"][0]["running_for_ms"].as_u64().unwrap() > 2000);
    let worker_id = stuck["expired_workers"][0]["worker"].as_str().unwrap();
    assert!(worker_id.contains(&worker.id().to_string()), "{stuck}");
    let table = env.ok(&["status"]);
    assert!(
        table.contains("(lease expired) still holds 1 job(s)")
            && table.contains("against a timeout of 1s"),
        "{table}"
    );
}

/// Cron mode: `work --max-workers N` exits 0 at once, saying so, while N live workers serve
/// any of its queues; of several started together, N stay.
#[test]
fn max_workers_keeps_cron_runs_from_piling_up() {
    for env in stores() {
        env.ok(&["migrate"]);
        let args = [
            "work",
            "--queue",
            "q,other",
            "--max-workers",
            "2",
            "--sleep",
            "100ms",
        ];
        let mut started: Vec<Child> = (0..4).map(|_| env.spawn(&args)).collect();
        // Two of the four exit 0 at once; two stay.
        wait_for(Duration::from_secs(20), "two to exit", || {
            started
                .iter_mut()
                .map(|c| c.try_wait().unwrap().is_some())
                .filter(|exited| *exited)
                .count()
                == 2
        });
        std::thread::sleep(Duration::from_millis(500));
        let mut exited = 0;
        for child in &mut started {
            if let Some(status) = child.try_wait().unwrap() {
                assert_eq!(status.code(), Some(0));
                exited += 1;
            }
        }
        assert_eq!(exited, 2, "exactly two of four stay");
        assert_eq!(live_workers(&env), 2);
        let out = env.run(&["work", "--queue", "other", "--max-workers", "2"]);
        assert_eq!(out.status.code(), Some(0));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("not started: 2 live worker(s)"), "{text}");
        // A queue nobody serves: it starts.
        let mut alone = env.spawn(&["work", "--queue", "elsewhere", "--max-workers", "1"]);
        std::thread::sleep(Duration::from_millis(1500));
        assert!(
            alone.try_wait().unwrap().is_none(),
            "a free queue's worker runs"
        );
        env.ok(&["terminate"]);
        for child in started.iter_mut().chain([&mut alone]) {
            exits_0(child, Duration::from_secs(20), "a worker");
        }
        drop_schema(&env);
    }
}
