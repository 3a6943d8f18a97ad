//! `spool demo`: a one-minute tour on the configured store. It appends to that store (so
//! `spool status` and `spool failed` afterwards show what it left), dispatches a few hundred
//! mixed jobs on the `demo` queue, runs a worker with a progress bar, and prints a summary.

use std::{process::ExitCode, sync::Arc, time::Duration};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

use super::{CliError, work};
use spool::{
    Backoff, Registry, Spool, Store, Worker, WorkerConfig,
    builtin::{Fail, Flaky, Noop, Sleep},
    store::FailedFilter,
};

const QUEUE: &str = "demo";

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// How many jobs to dispatch.
    #[arg(long, default_value_t = 300)]
    jobs: usize,
    /// Jobs run at once.
    #[arg(long, default_value_t = 20)]
    concurrency: usize,
}

pub(crate) async fn run(
    store: Arc<dyn Store>,
    registry: Registry,
    a: DemoArgs,
) -> Result<ExitCode, CliError> {
    let spool = Spool::new(store.clone());
    let started = std::time::Instant::now();
    let quick = Backoff::List(vec![Duration::from_millis(200), Duration::from_millis(400)]);
    let (mut slow, mut flaky, mut fast) = (0, 0, 0);
    for i in 0..a.jobs.saturating_sub(1) {
        match i % 10 {
            0..=2 => {
                slow += 1;
                spool
                    .dispatch(Sleep {
                        ms: 100 + (i as u64 * 37) % 400,
                    })
                    .on_queue(QUEUE)
                    .await?;
            }
            3 => {
                flaky += 1;
                let fail_times = 1 + (i as u32 / 10) % 2;
                spool
                    .dispatch(Flaky { fail_times })
                    .on_queue(QUEUE)
                    .tries(3)
                    .backoff(quick.clone())
                    .await?;
            }
            _ => {
                fast += 1;
                spool.dispatch(Noop {}).on_queue(QUEUE).await?;
            }
        }
    }
    let doomed = spool
        .dispatch(Fail {
            message: "the demo's payment provider said no (this one fails for good)".into(),
        })
        .on_queue(QUEUE)
        .tries(2)
        .backoff(quick)
        .await?;
    println!(
        "dispatched {} jobs to queue `{QUEUE}` on the {} store: {slow} slow, {flaky} flaky (fail, then succeed on retry), {fast} quick, 1 failing for good",
        a.jobs,
        store.backend()
    );

    let config = WorkerConfig {
        queues: vec![QUEUE.into()],
        concurrency: a.concurrency,
        until_done: true,
        sleep: Duration::from_millis(100),
        ..WorkerConfig::default()
    };
    let worker = Worker::new(store.clone(), registry, config);
    work::stop_on_signals(worker.shutdown_handle());
    let progress = progress(store.clone(), a.jobs as u64);
    let exit = worker.run().await?;
    progress.abort();

    let (failed, _) = store
        .failed_jobs(&FailedFilter {
            queue: Some(QUEUE.into()),
            limit: Some(5),
        })
        .await?;
    println!(
        "\ndone in {:.1}s: {} jobs completed, {} failed for good ({} attempts in all, retries included)",
        started.elapsed().as_secs_f64(),
        exit.completed,
        exit.failed,
        exit.reserved
    );
    println!("\n$ spool failed --queue {QUEUE}");
    crate::failed::print_table(&failed);
    println!(
        "\nnext: `spool failed show {}`, `spool retry {}`, `spool status`",
        doomed.id, doomed.id
    );
    Ok(ExitCode::SUCCESS)
}

/// A progress bar on a terminal, a line every second otherwise.
fn progress(store: Arc<dyn Store>, total: u64) -> tokio::task::JoinHandle<()> {
    let terminal = std::io::stderr().is_terminal();
    tokio::spawn(async move {
        let bar = terminal.then(|| {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template("{bar:40} {pos}/{len} jobs done  {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        });
        let mut ticks = 0u64;
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            ticks += 1;
            let Ok(stats) = store.stats().await else {
                continue;
            };
            let q = stats.queues.iter().find(|q| q.name == QUEUE);
            let left = q.map_or(0, |q| q.pending + q.delayed + q.reserved);
            let done = total.saturating_sub(left);
            let msg = format!(
                "{} running, {} waiting to retry",
                q.map_or(0, |q| q.reserved),
                q.map_or(0, |q| q.delayed)
            );
            match &bar {
                Some(bar) => {
                    bar.set_position(done);
                    bar.set_message(msg);
                }
                None if ticks.is_multiple_of(10) => eprintln!("{done}/{total} jobs done, {msg}"),
                None => {}
            }
        }
    })
}
