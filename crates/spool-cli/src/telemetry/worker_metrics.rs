//! The worker process's own figures as OpenTelemetry instruments: the series its `--http`
//! `/metrics` serves as `spool_worker_*`, read when the meter provider collects.

use opentelemetry::metrics::{ObservableCounter, ObservableGauge};
use spool::worker::WorkerCounters;

/// The instruments, kept while the worker runs.
#[derive(Debug)]
pub(crate) struct WorkerInstruments {
    _counters: Vec<ObservableCounter<u64>>,
    _gauges: Vec<ObservableGauge<u64>>,
}

type Read = fn(&WorkerCounters) -> u64;

/// Registers the worker's instruments on the global meter provider: the OTLP one this process
/// set up, or an embedding app's own; a no-op provider when neither exists.
pub(crate) fn observe_worker(counters: WorkerCounters) -> WorkerInstruments {
    let meter = opentelemetry::global::meter("spool");
    // Names as OpenTelemetry spells them; a Prometheus exporter turns
    // `spool.worker.jobs.completed` back into `spool_worker_jobs_completed_total`.
    let totals: [(&'static str, &'static str, Read); 3] = [
        (
            "spool.worker.jobs.completed",
            "Jobs this worker completed.",
            WorkerCounters::completed,
        ),
        (
            "spool.worker.jobs.failed",
            "Jobs this worker failed for good.",
            WorkerCounters::failed,
        ),
        (
            "spool.worker.jobs.handed_back",
            "Jobs this worker handed back as it stopped.",
            WorkerCounters::handed_back,
        ),
    ];
    let levels: [(&'static str, &'static str, Read); 2] = [
        (
            "spool.worker.jobs.running",
            "Jobs running in this worker now.",
            WorkerCounters::running,
        ),
        (
            "spool.worker.concurrency",
            "Jobs this worker runs at once at most.",
            |c| c.concurrency() as u64,
        ),
    ];
    let counters_of = |read: Read| {
        let c = counters.clone();
        move |observer: &dyn opentelemetry::metrics::AsyncInstrument<u64>| {
            observer.observe(read(&c), &[])
        }
    };
    WorkerInstruments {
        _counters: totals
            .into_iter()
            .map(|(name, help, read)| {
                meter
                    .u64_observable_counter(name)
                    .with_description(help)
                    .with_unit("{job}")
                    .with_callback(counters_of(read))
                    .build()
            })
            .collect(),
        _gauges: levels
            .into_iter()
            .map(|(name, help, read)| {
                meter
                    .u64_observable_gauge(name)
                    .with_description(help)
                    .with_unit("{job}")
                    .with_callback(counters_of(read))
                    .build()
            })
            .collect(),
    }
}
