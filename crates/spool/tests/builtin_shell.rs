//! The built-in `shell` job under a real worker: what the child may see, and what its failure
//! record says.
#![cfg(feature = "sqlite")]

mod support;

use std::{sync::Arc, time::Duration};

use spool::{Envelope, Registry, Store, Worker, WorkerConfig, store::NewJob};

/// Runs `cmds` as `shell` jobs (`tries` each, no backoff) on a worker allowed to run them;
/// returns each job's failed record (error, causes, attempts), or `None` for one that
/// succeeded.
async fn run_shell(cmds: &[&str], tries: u32) -> Vec<Option<(String, Vec<String>, u32)>> {
    let store: Arc<dyn Store> = support::sqlite_store().await.0;
    let envelopes: Vec<Envelope> = cmds
        .iter()
        .map(|cmd| {
            let mut e = Envelope::new("shell", "default", serde_json::json!({ "cmd": cmd }));
            e.options.tries = Some(tries);
            e.options.backoff = Some(spool::Backoff::List(vec![Duration::ZERO]));
            e
        })
        .collect();
    let jobs: Vec<NewJob> = envelopes
        .iter()
        .map(|e| NewJob::new(e, Duration::ZERO).unwrap())
        .collect();
    store.push(&jobs).await.unwrap();
    let config = WorkerConfig {
        until_done: true,
        sleep: Duration::from_millis(50),
        allow: ["shell".to_string()].into(),
        ..WorkerConfig::default()
    };
    let worker = Worker::new(store.clone(), Registry::with_builtins(), config);
    tokio::time::timeout(Duration::from_secs(30), worker.run())
        .await
        .expect("worker finished in time")
        .expect("worker ran");
    let mut out = Vec::new();
    for e in &envelopes {
        out.push(
            store
                .failed_job(&e.id)
                .await
                .unwrap()
                .map(|f| (f.error, f.causes, f.attempts)),
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_over_the_argument_limit_fails_at_once_with_its_cause() {
    let huge = format!("echo {}", "x".repeat(4 * 1024 * 1024));
    let got = run_shell(&[&huge], 3).await;
    let (error, _, attempts) = got[0].clone().expect("it cannot run");
    assert!(error.contains("argument limit"), "{error}");
    assert_eq!(attempts, 1, "a command that can never start is not retried");
    assert!(
        error.len() < 1000,
        "the error does not print the whole command"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shell_failures_keep_only_the_output_there_is_and_a_short_command() {
    let long_cmd = format!("true {}; echo out; exit 3", "a".repeat(2000));
    let got = run_shell(&["exit 4", &long_cmd], 1).await;
    let (error, causes, _) = got[0].clone().expect("exit 4 fails");
    assert!(error.contains("exit status 4"), "{error}");
    assert!(
        causes.is_empty(),
        "no empty stdout/stderr causes: {causes:?}"
    );
    let (error, causes, _) = got[1].clone().expect("exit 3 fails");
    assert!(error.len() < 400, "the command is shortened: {error}");
    assert_eq!(causes, ["stdout: out"]);
}
