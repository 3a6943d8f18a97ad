//! App state registered once with the registry reaches every job, through the embedded
//! command as through a worker built in Rust.

use std::{
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use serde::{Deserialize, Serialize};
use spool::{Job, JobContext, JobResult, Registry};
use spool_cli::App;

/// Shared state an app would hold: here, a counter of jobs run.
#[derive(Default)]
struct Counter(AtomicUsize);

#[derive(Serialize, Deserialize)]
struct Count {}

impl Job for Count {
    const NAME: &'static str = "count";
    async fn handle(self, ctx: JobContext) -> JobResult {
        ctx.state::<Arc<Counter>>()?
            .0
            .fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn jobs_reach_state_registered_once_and_fail_clearly_without_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("spool.db").display());
    let counter = Arc::new(Counter::default());
    let registry = Registry::with_builtins()
        .register::<Count>()
        .with_state(counter.clone());
    let app = || App::new(registry.clone()).logging(false);
    let run = |args: &'static [&'static str]| {
        let url = url.clone();
        let app = app();
        async move {
            let mut argv = vec!["myapp", "--url", url.as_str()];
            argv.extend_from_slice(args);
            app.run_from(argv).await
        }
    };
    assert_eq!(
        run(&["dispatch", "count", "--count", "3"]).await,
        ExitCode::SUCCESS
    );
    assert_eq!(run(&["work", "--stop-when-empty"]).await, ExitCode::SUCCESS);
    assert_eq!(counter.0.load(Ordering::Relaxed), 3);

    // The same job under a registry without the state fails with the type it asked for.
    let without = App::new(Registry::with_builtins().register::<Count>()).logging(false);
    let code = without
        .run_from(["myapp", "--url", &url, "dispatch", "count", "--tries", "1"])
        .await;
    assert_eq!(code, ExitCode::SUCCESS);
    let code = App::new(Registry::with_builtins().register::<Count>())
        .logging(false)
        .run_from(["myapp", "--url", &url, "work", "--stop-when-empty"])
        .await;
    assert_eq!(code, ExitCode::SUCCESS);
    let store = spool::connect(&url).await.expect("store");
    let (failed, total) = store
        .failed_jobs(&Default::default())
        .await
        .expect("failed jobs");
    assert_eq!(total, 1);
    assert!(
        failed[0]
            .error
            .contains("no app state of type `alloc::sync::Arc<app_state::Counter>`"),
        "{}",
        failed[0].error
    );
    assert_eq!(counter.0.load(Ordering::Relaxed), 3);
}
