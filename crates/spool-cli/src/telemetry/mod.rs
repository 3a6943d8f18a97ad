//! OpenTelemetry export for `work`, `supervise` and `dashboard` (the `otel` feature): spans
//! and the worker's own figures over OTLP/HTTP when an `OTEL_EXPORTER_OTLP_*ENDPOINT` is
//! set, nothing otherwise (docs/tracing.md).
//!
//! Without the feature the same names exist and do nothing, so callers need no `cfg`.

#[cfg(feature = "otel")]
mod otlp;
#[cfg(feature = "otel")]
mod worker_metrics;

#[cfg(feature = "otel")]
pub(crate) use otlp::Telemetry;
#[cfg(feature = "otel")]
pub(crate) use worker_metrics::observe_worker;

#[cfg(not(feature = "otel"))]
mod off;
#[cfg(not(feature = "otel"))]
pub(crate) use off::{Telemetry, observe_worker};
