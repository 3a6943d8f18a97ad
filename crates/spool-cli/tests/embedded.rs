//! The embedding API in process: commands run on the caller's tokio runtime (no nested runtime,
//! no panic), mounted under an app's own clap command line, with the app's worker pieces.

use std::{
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use clap::{Parser, Subcommand};
use spool::{Registry, events::Events};
use spool_cli::{App, Cli};

fn scratch() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("spool.db").display());
    (dir, url)
}

fn app() -> App {
    App::new(Registry::with_builtins()).logging(false)
}

#[tokio::test(flavor = "multi_thread")]
async fn commands_run_inside_the_callers_runtime() {
    let (_dir, url) = scratch();
    let code = app()
        .run_from(["myapp", "--url", &url, "dispatch", "noop", "--count", "3"])
        .await;
    assert_eq!(code, ExitCode::SUCCESS);

    let processed = Arc::new(AtomicUsize::new(0));
    let events = Events::new();
    let seen = processed.clone();
    events.on(move |event| {
        if event.name() == "job.processed" {
            seen.fetch_add(1, Ordering::Relaxed);
        }
    });
    let configured = Arc::new(AtomicUsize::new(0));
    let calls = configured.clone();
    let code = app()
        .events(events)
        .configure_worker(move |config| {
            // The flags were applied first.
            assert!(config.stop_when_empty);
            calls.fetch_add(1, Ordering::Relaxed);
        })
        .run_from(["myapp", "--url", &url, "work", "--stop-when-empty"])
        .await;
    assert_eq!(code, ExitCode::SUCCESS);
    assert_eq!(configured.load(Ordering::Relaxed), 1);
    assert_eq!(processed.load(Ordering::Relaxed), 3);

    let stats = spool::connect(&url)
        .await
        .expect("store")
        .stats()
        .await
        .expect("stats");
    assert_eq!(stats.processed, 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn help_and_usage_errors_return_a_code_instead_of_exiting() {
    assert_eq!(app().run_from(["myapp", "--help"]).await, ExitCode::SUCCESS);
    assert_eq!(
        app().run_from(["myapp", "no-such-command"]).await,
        ExitCode::from(2)
    );
}

#[derive(Parser)]
struct MyApp {
    #[command(subcommand)]
    command: MyCommand,
}

#[derive(Subcommand)]
enum MyCommand {
    /// The app's own command.
    Serve,
    /// Background jobs.
    Jobs(Cli),
}

#[tokio::test(flavor = "multi_thread")]
async fn commands_mount_under_an_apps_own_subcommand() {
    let (_dir, url) = scratch();
    let parsed = MyApp::try_parse_from(["myapp", "jobs", "--url", &url, "dispatch", "noop"])
        .expect("parses");
    let MyCommand::Jobs(cli) = parsed.command else {
        panic!("the jobs subcommand");
    };
    assert_eq!(cli.url(), url);
    assert_eq!(app().run_with(cli).await, ExitCode::SUCCESS);

    let parsed = MyApp::try_parse_from(["myapp", "jobs", "status", "--url", &url]).expect("parses");
    let MyCommand::Jobs(cli) = parsed.command else {
        panic!("the jobs subcommand");
    };
    assert_eq!(app().run_with(cli).await, ExitCode::SUCCESS);
    assert!(matches!(
        MyApp::try_parse_from(["myapp", "serve"]).map(|a| a.command),
        Ok(MyCommand::Serve)
    ));
}
