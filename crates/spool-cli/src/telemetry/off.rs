//! Built without the `otel` feature: no exporter, no layer, no instruments.

use spool::worker::WorkerCounters;
use tracing_subscriber::layer::Identity;

/// Nothing to export.
#[derive(Debug, Default)]
pub(crate) struct Telemetry;

impl Telemetry {
    pub(crate) fn from_env() -> Telemetry {
        Telemetry
    }

    pub(crate) fn none() -> Telemetry {
        Telemetry
    }

    pub(crate) fn layer(&self) -> Option<Identity> {
        None
    }

    pub(crate) fn report(&self) {}

    pub(crate) async fn shutdown(self) {}
}

/// No instruments.
#[derive(Debug)]
pub(crate) struct WorkerInstruments;

pub(crate) fn observe_worker(_counters: WorkerCounters) -> WorkerInstruments {
    WorkerInstruments
}
